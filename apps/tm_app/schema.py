"""Write the JSON Schema of every event, the services' command events included:
``python -m tm_app.schema [PATH]`` (``make schema``; default ``docs/events.schema.json``).

Only this layer may import services, so the list of service event modules lives here; a test
proves every ``services/*/tm_*/commands.py`` is on it, so the document never depends on what a
process happened to import first."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from tm_common import events
from tm_common.events.schema import build_schema

SERVICE_EVENT_MODULES = ("tm_risk.commands", "tm_sizer.commands")


def full_schema() -> dict[str, Any]:
    """:func:`~tm_common.events.schema.build_schema` after importing every service event module."""
    for name in SERVICE_EVENT_MODULES:
        importlib.import_module(name)
    return build_schema()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0] if argv else "docs/events.schema.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(full_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(events.event_types())} event schemas to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
