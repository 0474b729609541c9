"""An in-memory model registry for tests and benchmarks: the ``production(kind)`` /
``get(version)`` source that the model caches read (``tm_<svc>.models.ModelSource``)."""

from __future__ import annotations


class Record:
    """A stand-in for a registry record (``version``, ``kind``, ``artifact``, ``stage``)."""

    def __init__(self, version: str, artifact: bytes, kind: str, owner: FakeRegistry) -> None:
        self.version, self.artifact, self.kind = version, artifact, kind
        self._owner = owner

    @property
    def stage(self) -> str:
        """``production`` while it is its kind's production version, else ``candidate``."""
        return "production" if self._owner.prod.get(self.kind) == self.version else "candidate"


class FakeRegistry:
    """In-memory model source: ``add`` (optionally as production), ``promote`` (what the real
    registry does before a ``models.promoted`` is published); ``fail`` toggles a registry
    outage (every call raises ``ConnectionError``), ``fail_next`` fails only that many calls;
    ``calls`` counts the lookups. ``kind``: what ``add`` files a version under by default."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.records: dict[str, Record] = {}
        self.prod: dict[str, str] = {}
        self._later: set[str] = set()
        self.fail = False
        self.fail_next = 0
        self.calls = 0

    def add(self, version: str, artifact: bytes, kind: str | None = None,
            promote: bool = False) -> None:
        kind = self.kind if kind is None else kind
        self.records[version] = Record(version, artifact, kind, self)
        if promote:
            self.prod[kind] = version

    def promote(self, version: str) -> None:
        """Make ``version`` its kind's production (the registry's side of a promotion)."""
        rec = self.records[version]
        self.prod[rec.kind] = version

    def promote_later(self, version: str) -> None:
        """``version`` becomes production when it is first looked up by version (the handling
        of its ``models.promoted``): for a test that publishes every event before a consumer
        starts, so that its cold start still finds the previous production, as it would have
        before the promotion."""
        self._later.add(version)

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
        if version in self._later:
            self._later.discard(version)
            self.promote(version)
        return self.records.get(version)
