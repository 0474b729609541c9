"""Deterministic identifiers: UUID-shaped strings derived from (seed, kind, counter), so a run
with the same seed and the same requests produces the same order and execution ids."""

from __future__ import annotations

import hashlib
import uuid


class IdFactory:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._counters: dict[str, int] = {}

    def next(self, kind: str) -> str:
        n = self._counters.get(kind, 0) + 1
        self._counters[kind] = n
        digest = hashlib.sha256(f"{self.seed}:{kind}:{n}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def seq(self) -> int:
        """A global, increasing sequence number (Bybit's ``seq``)."""
        n = self._counters.get("#seq", 0) + 1
        self._counters["#seq"] = n
        return n
