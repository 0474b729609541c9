"""``python -m tm_app.fuzz``: the full fuzz run (:mod:`tm_app.fuzz.streams`)."""

from tm_app.fuzz.streams import main

if __name__ == "__main__":
    raise SystemExit(main())
