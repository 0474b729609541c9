"""Versioned state snapshots of the stateful domain engines (regime, signal).

An engine's ``snapshot()`` is a JSON-able dict that carries its ``"schema"`` number; ``restore``
accepts it only with that number, since a snapshot of another layout would be misread.
"""

from __future__ import annotations

from typing import Any


def checked_state(state: dict[str, Any] | None, schema: int, owner: str) -> dict[str, Any]:
    """``state`` (None → ``{}``, the initial state) after checking that a non-empty one has
    ``"schema" == schema``; ``ValueError`` naming ``owner`` otherwise."""
    s = state or {}
    if s and s.get("schema") != schema:
        raise ValueError(f"{owner} state schema {s.get('schema')!r} != {schema}")
    return s
