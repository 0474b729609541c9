"""Model registry on the ``model_registry`` table (PostgreSQL or SQLite, SQLAlchemy async).

Lifecycle: ``register`` stores a version as ``candidate``; ``promote`` makes it ``production``
(the previous production of the same kind and instrument becomes ``archived``); ``rollback``
re-promotes the most recently demoted version that was not itself rolled back, so repeated
rollbacks walk back through the promotion history (v3 → v2 → v1).

Artifacts are bundle bytes (:mod:`tm_common.models.bundle`), never pickles: ``register`` parses
them with :meth:`Bundle.from_bytes` before writing, so an unsafe artifact is refused at the door.

Audit: every promotion and rollback also writes a row to the ``audit`` table
(:mod:`tm_common.audit`) in the same transaction as the stage change: kind ``promotion`` or
``rollback``, what (the version and the one it replaced), why (the reason), who (``who``, default
the OS user running the command). A no-op re-promotion writes nothing.

Bookkeeping: the table has no column for stage history, so each stage change is appended to
``metrics["_history"]`` (``[{"stage", "at_ms", "reason", "by", "previous"}]``); every other
metrics key is the trainer's. The database schema itself is created by ``tm_common.db.migrate``.
"""

from __future__ import annotations

import builtins
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tm_common.audit import AuditEntry, audit_id, cli_user, insert_audit
from tm_common.db.tables import model_registry as T
from tm_common.events.models import ModelPromoted
from tm_common.models.bundle import Bundle, BundleError
from tm_common.models.evidence import SHADOW_KEY, ShadowRecord

HISTORY_KEY = "_history"
KINDS = ("signal", "regime", "rl")


class RegistryError(LookupError):
    """Unknown version, nothing to roll back to, or a conflicting re-registration."""


@dataclass(frozen=True)
class ModelRecord:
    """One row of the registry. ``artifact`` is the bundle bytes (``None`` in listings)."""

    version: str
    kind: str
    instrument: str | None
    stage: str
    created_at_ms: int
    parent_version: str | None
    data_hash: str
    features: Any
    params: dict[str, Any]
    seed: int
    metrics: dict[str, Any]
    artifact: bytes | None
    artifact_format: str | None

    def bundle(self) -> Bundle:
        """The parsed artifact (raises if it was not loaded or is not a bundle)."""
        if self.artifact is None:
            raise RegistryError(f"{self.version}: artifact not loaded (use ModelRegistry.get)")
        return Bundle.from_bytes(self.artifact)

    @property
    def history(self) -> builtins.list[dict[str, Any]]:
        return list(self.metrics.get(HISTORY_KEY, []))

    def public_metrics(self) -> dict[str, float]:
        """Top-level numeric metrics (the ``ModelPromoted.metrics`` payload)."""
        return {k: float(v) for k, v in self.metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _record(row: Any, with_artifact: bool = True) -> ModelRecord:
    m = row._mapping
    art = m.get("artifact") if with_artifact else None
    return ModelRecord(
        version=m["version"], kind=m["kind"], instrument=m["instrument"], stage=m["stage"],
        created_at_ms=int(m["created_at_ms"]), parent_version=m["parent_version"],
        data_hash=m["data_hash"], features=m["features"], params=dict(m["params"] or {}),
        seed=int(m["seed"]), metrics=dict(m["metrics"] or {}),
        artifact=None if art is None else bytes(art), artifact_format=m["artifact_format"])


_LIST_COLS = [c for c in T.c if c.name != "artifact"]


class ModelRegistry:
    """Async access to the model registry.

    Args:
        engine: an engine from :func:`tm_common.db.make_engine` on a migrated database.
        clock_ms: wall clock in ms UTC (injectable for tests); stamps registrations and stage
            changes, never influences which model is chosen beyond ordering.
    """

    def __init__(self, engine: AsyncEngine, *, clock_ms: Callable[[], int] = _now_ms) -> None:
        self.engine = engine
        self._clock = clock_ms

    async def register(self, kind: str, version: str, bundle_bytes: bytes, *, data_hash: str,
                       features: Any, params: dict[str, Any], seed: int, metrics: dict[str, Any],
                       instrument: str | None = None, parent_version: str | None = None,
                       artifact_format: str = "tm-bundle-zip") -> ModelRecord:
        """Store ``version`` as a candidate; idempotent for the same version and bytes.

        Raises:
            BundleError: the bytes are not a safe bundle, or its manifest's kind/version differ.
            RegistryError: ``version`` exists with other bytes or another kind.
        """
        if kind not in KINDS:
            raise RegistryError(f"unknown model kind {kind!r} (expected one of {', '.join(KINDS)})")
        b = Bundle.from_bytes(bundle_bytes)
        if b.kind != kind or b.version != version:
            raise BundleError(f"bundle manifest says {b.kind}/{b.version}, registering "
                              f"{kind}/{version}")
        try:
            return await self._insert(kind, version, bytes(bundle_bytes), data_hash, features,
                                      params, seed, metrics, instrument, parent_version,
                                      artifact_format)
        except sa.exc.IntegrityError:  # a concurrent register of the same version won the race
            return await self._insert(kind, version, bytes(bundle_bytes), data_hash, features,
                                      params, seed, metrics, instrument, parent_version,
                                      artifact_format)

    async def _insert(self, kind: str, version: str, bundle_bytes: bytes, data_hash: str,
                      features: Any, params: dict[str, Any], seed: int, metrics: dict[str, Any],
                      instrument: str | None, parent_version: str | None,
                      artifact_format: str) -> ModelRecord:
        async with self.engine.begin() as conn:
            existing = (await conn.execute(sa.select(T).where(T.c.version == version))).first()
            if existing is not None:
                rec = _record(existing)
                if rec.kind != kind or rec.artifact != bundle_bytes:
                    raise RegistryError(f"version {version} already registered with different "
                                        "content; choose a new version")
                return rec
            metrics = {k: v for k, v in metrics.items() if k != HISTORY_KEY}
            now = self._clock()
            metrics[HISTORY_KEY] = [{"stage": "candidate", "at_ms": now, "reason": "registered",
                                     "by": "register", "previous": None}]
            await conn.execute(sa.insert(T).values(
                version=version, kind=kind, instrument=instrument, stage="candidate",
                created_at_ms=now, parent_version=parent_version, data_hash=data_hash,
                features=features, params=params, seed=int(seed), metrics=metrics,
                artifact=bundle_bytes, artifact_format=artifact_format))
            row = (await conn.execute(sa.select(T).where(T.c.version == version))).one()
        return _record(row)

    async def get(self, version: str) -> ModelRecord | None:
        """The full record (with artifact), or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(T).where(T.c.version == version))).first()
        return None if row is None else _record(row)

    async def production(self, kind: str, instrument: str | None = None) -> ModelRecord | None:
        """The production record (with artifact) of ``kind`` (and ``instrument``), or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(T).where(
                T.c.kind == kind, _inst(instrument), T.c.stage == "production"))).first()
        return None if row is None else _record(row)

    async def list(self, kind: str | None = None) -> builtins.list[ModelRecord]:
        """Every record (artifact not loaded), newest registration first."""
        q = sa.select(*_LIST_COLS).order_by(T.c.created_at_ms.desc(), T.c.version.desc())
        if kind is not None:
            q = q.where(T.c.kind == kind)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [_record(r, with_artifact=False) for r in rows]

    async def awaiting_evidence(self, kind: str = "signal") -> builtins.list[ModelRecord]:
        """The candidates of ``kind`` registered after its production model (all of them when
        none is production) whose walk-forward gates passed, newest first: the ones that wait
        for forward shadow evidence before they may be promoted."""
        prod = await self.production(kind)
        out = []
        for rec in await self.list(kind):                       # newest first
            if prod is not None and (rec.version == prod.version
                                     or rec.created_at_ms < prod.created_at_ms):
                break
            if rec.stage == "candidate" and rec.metrics.get("gate_passed") is True:
                out.append(rec)
        return out

    async def promote(self, version: str, reason: str, *,
                      evidence: dict[str, Any] | None = None,
                      who: str | None = None) -> ModelPromoted:
        """Make ``version`` production; the previous production becomes archived. ``who``: the
        audit trail's actor (default: the OS user).

        Promoting the current production again changes nothing and returns the same event body.
        ``evidence`` (e.g. ``{"forced": True, "forward_days": 3.5}``: what the operator promoted
        on) is stored in the stage-history entry beside ``reason``.

        Returns:
            The :class:`ModelPromoted` body to publish on ``models.promoted``.
        Raises:
            RegistryError: unknown version.
        """
        async with self.engine.begin() as conn:
            return await self._promote(conn, version, reason, by="promote", evidence=evidence,
                                       who=who)

    async def record_shadow(self, version: str, record: ShadowRecord) -> None:
        """Store (or refresh) one shadow run of ``version`` in its metrics (``_shadow``).

        Raises:
            RegistryError: unknown version.
        """
        async with self.engine.begin() as conn:
            row = (await conn.execute(_locked(conn, sa.select(T.c.metrics).where(
                T.c.version == version)))).first()
            if row is None:
                raise RegistryError(f"unknown model version {version!r}")
            m = dict(row.metrics or {})
            m[SHADOW_KEY] = {**(m.get(SHADOW_KEY) or {}), record.run_id: record.to_json()}
            await conn.execute(sa.update(T).where(T.c.version == version).values(metrics=m))

    async def rollback(self, kind: str, reason: str, instrument: str | None = None, *,
                       who: str | None = None) -> ModelPromoted:
        """Re-promote the most recently demoted version of ``kind`` that was not rolled back.

        The current production becomes archived (marked as rolled back, so a second rollback goes
        one step further back instead of toggling).

        Raises:
            RegistryError: no production to roll back from, or no archived version to go back to.
        """
        async with self.engine.begin() as conn:
            rows = (await conn.execute(_locked(conn, sa.select(
                T.c.version, T.c.stage, T.c.metrics).where(T.c.kind == kind, _inst(instrument)))))\
                .all()
            best: tuple[int, str] | None = None
            for r in rows:
                hist = (r.metrics or {}).get(HISTORY_KEY, [])
                last = hist[-1] if hist else None
                if r.stage != "archived" or not last or last.get("by") == "rollback":
                    continue
                key = (int(last.get("seq", last.get("at_ms", 0))), r.version)
                if best is None or key > best:
                    best = key
            if best is None:
                raise RegistryError(f"no archived {kind} version to roll back to")
            return await self._promote(conn, best[1], reason, by="rollback", who=who)

    async def _promote(self, conn: AsyncConnection, version: str, reason: str, *,
                       by: str, evidence: dict[str, Any] | None = None,
                       who: str | None = None) -> ModelPromoted:
        row = (await conn.execute(_locked(conn, sa.select(T).where(T.c.version == version))))\
            .first()
        if row is None:
            raise RegistryError(f"unknown model version {version!r}")
        rec = _record(row, with_artifact=False)
        cur = (await conn.execute(_locked(conn, sa.select(T.c.version, T.c.metrics).where(
            T.c.kind == rec.kind, _inst(rec.instrument), T.c.stage == "production")))).all()
        previous = [r.version for r in cur if r.version != version]
        if rec.stage == "production":
            prior: dict[str, Any] = next(
                (h for h in reversed(rec.history) if h.get("stage") == "production"), {})
            return ModelPromoted(kind=_kind(rec.kind), version=version, previous_version=prior.get(
                "previous"), instrument=rec.instrument, reason=prior.get("reason", reason),
                metrics=rec.public_metrics())
        seq = await self._next_seq(conn, rec.kind)
        now = self._clock()
        for r in cur:
            if r.version == version:
                continue
            m = dict(r.metrics or {})
            m[HISTORY_KEY] = [*m.get(HISTORY_KEY, []), {
                "stage": "archived", "at_ms": now, "seq": seq, "reason": reason, "by": by,
                "previous": None}]
            await conn.execute(sa.update(T).where(T.c.version == r.version)
                               .values(stage="archived", metrics=m))
        m = dict(rec.metrics)
        prev = previous[0] if previous else None
        m[HISTORY_KEY] = [*m.get(HISTORY_KEY, []), {
            "stage": "production", "at_ms": now, "seq": seq, "reason": reason, "by": by,
            "previous": prev, **({"evidence": evidence} if evidence else {})}]
        await conn.execute(sa.update(T).where(T.c.version == version)
                           .values(stage="production", metrics=m))
        kind = "rollback" if by == "rollback" else "promotion"
        scope = f" ({rec.instrument})" if rec.instrument else ""
        await insert_audit(conn, [AuditEntry(
            audit_id=audit_id(kind, rec.kind, version, seq), at_ms=now, kind=kind,
            what=f"{rec.kind}{scope} model {version} to production (previous {prev or 'none'})",
            why=reason, who=who or cli_user(), source="registry")])
        return ModelPromoted(kind=_kind(rec.kind), version=version, previous_version=prev,
                             instrument=rec.instrument, reason=reason, metrics=rec.public_metrics())

    async def _next_seq(self, conn: AsyncConnection, kind: str) -> int:
        """A per-kind counter of stage changes: orders them even within one clock millisecond."""
        rows = (await conn.execute(sa.select(T.c.metrics).where(T.c.kind == kind))).all()
        top = 0
        for r in rows:
            for h in (r.metrics or {}).get(HISTORY_KEY, []):
                top = max(top, int(h.get("seq", 0)))
        return top + 1


def _kind(kind: str) -> Literal["signal", "regime", "rl"]:
    """A registry row's kind as the event types it (register only stores these three)."""
    return cast(Literal["signal", "regime", "rl"], kind)


def _inst(instrument: str | None) -> sa.ColumnElement[bool]:
    return T.c.instrument.is_(None) if instrument is None else T.c.instrument == instrument


def _locked(conn: AsyncConnection, q: sa.Select[Any]) -> sa.Select[Any]:
    """``SELECT ... FOR UPDATE`` on PostgreSQL (SQLite serialises writers by itself)."""
    return q.with_for_update() if conn.dialect.name == "postgresql" else q
