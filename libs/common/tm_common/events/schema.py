"""Write the JSON Schema of every event to a file: ``python -m tm_common.events.schema [PATH]``."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

import msgspec

from tm_common import events


# Event types defined by services for their own command streams (imported when installed), so
# that the schema does not depend on what happened to be imported before.
SERVICE_EVENT_MODULES = ("tm_risk.commands", "tm_sizer.commands")


def load_service_events() -> None:
    for name in SERVICE_EVENT_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def normalise_descriptions(node: object) -> object:
    """Every ``description`` cleaned as :func:`inspect.cleandoc` does (common indentation and
    blank edge lines removed). msgspec copies docstrings verbatim in some releases and dedents
    them in others; this makes the document independent of which one is installed."""
    if isinstance(node, dict):
        return {k: (inspect.cleandoc(v) if k == "description" and isinstance(v, str)
                    else normalise_descriptions(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [normalise_descriptions(v) for v in node]
    return node


def build_schema() -> dict:
    """One JSON Schema document: the envelope fields and a ``$defs`` entry per event body."""
    load_service_events()
    types = events.event_types()
    classes = [types[name] for name in sorted(types)]
    _, defs = msgspec.json.schema_components(classes, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Trade-Matrix events",
        "description": "Stream entry = envelope fields + body (compact JSON). Decimals are strings.",
        "envelope": ["type", "schema_version", "event_id", "correlation_id", "causation_id",
                     "ts_event_ns", "ts_init_ns", "body"],
        "events": {name: {"schema_version": types[name].SCHEMA_VERSION,
                          "body": {"$ref": f"#/$defs/{types[name].__name__}"}}
                   for name in sorted(types)},
        "$defs": normalise_descriptions(defs),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0] if argv else "docs/events.schema.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(events.event_types())} event schemas to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
