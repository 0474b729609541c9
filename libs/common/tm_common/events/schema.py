"""The JSON Schema of every registered event type.

This library documents the types it is given (every type registered when :func:`build_schema`
runs). The complete document, with the services' own command events, is written by the apps
layer, which may import services: ``python -m tm_app.schema [PATH]`` (``make schema``)."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from tm_common import events


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


def build_schema() -> dict[str, Any]:
    """One JSON Schema document: the envelope fields and a ``$defs`` entry per registered
    event body."""
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
