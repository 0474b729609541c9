"""An in-memory model registry for tests and benchmarks: the ``production(kind)`` /
``get(version)`` source that the model caches read (``tm_<svc>.models.ModelSource``)."""

from __future__ import annotations


class Record:
    """A stand-in for a registry record (``version``, ``kind``, ``artifact``)."""

    def __init__(self, version: str, artifact: bytes, kind: str) -> None:
        self.version, self.artifact, self.kind = version, artifact, kind


class FakeRegistry:
    """In-memory model source: ``add`` (optionally as production); ``fail`` toggles a registry
    outage (every call raises ``ConnectionError``), ``fail_next`` fails only that many calls;
    ``calls`` counts the lookups. ``kind``: what ``add`` files a version under by default."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.records: dict[str, Record] = {}
        self.prod: dict[str, str] = {}
        self.fail = False
        self.fail_next = 0
        self.calls = 0

    def add(self, version: str, artifact: bytes, kind: str | None = None,
            promote: bool = False) -> None:
        kind = self.kind if kind is None else kind
        self.records[version] = Record(version, artifact, kind)
        if promote:
            self.prod[kind] = version

    def _check(self) -> None:
        self.calls += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("registry down (test)")
        if self.fail:
            raise ConnectionError("registry down (test)")

    async def production(self, kind: str) -> Record | None:
        self._check()
        v = self.prod.get(kind)
        return None if v is None else self.records[v]

    async def get(self, version: str) -> Record | None:
        self._check()
        return self.records.get(version)
