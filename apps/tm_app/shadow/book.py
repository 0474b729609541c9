"""A shadow book: production's market events, a candidate's signal, a paper account.

Composition: the services' own ``build`` (as the in-process backtest composes them:
:func:`tm_app.backtest.build_services`) on a Redis bus under the book's namespace, with a
:class:`~tm_app.shadow.pinned.PinnedRegistry` (the signal service's "production" model is the
candidate; regime and sizing models are production's) and a
:class:`~tm_app.shadow.venue.PaperVenue`. The book drives the consumers itself, bar time by bar
time (:class:`~tm_app.shadow.mirror.MarketMirror`): push the batch's funding and bars to the paper
venue, publish the batch's events into the book's namespace, drain every consumer until idle. So
a book follows event time exactly as the backtest does, in replay, paper and live mode alike, and
its results do not depend on how far behind production it runs.

Restart: the book wipes its namespace and reads production's streams from the start again (its
paper account lives in memory; its state is a function of the market events and the candidate).
With ``auto`` or ``awaiting-evidence`` it asks the registry every ``candidate_check_s`` which
candidate that choice names now (:meth:`ShadowBook.follow_candidate`); another one is taken the
same way, after the record of the one before is written.
Evidence: every ``evidence_every_bars`` bar times and at stop, the candidate's
:class:`~tm_common.models.evidence.ShadowRecord` for this run is written to the registry. In a
forward mode (paper, live) the record covers only the bars that opened at or after the candidate
was registered (:attr:`ShadowBook.evidence_from_ms`): the book trades the market's earlier bars
too (a paper run's warm-up backfill, production's retained history), so that its state is
continuous, but prices that existed when the candidate was made are no forward evidence. A
replay's record covers its whole window (shown, never counted).
Instruments: the paper account serves the filters of ``instruments_file`` (under ``tm paper``,
the market's) and, before each bar time, those the paper relay has rewritten it with since
(:mod:`~tm_app.shadow.instruments`): a new qty step, funding interval or delisting reaches the
book's account as it reaches production's paper venue, and the book's executor and risk at once
(production's read it on their timed refresh). A restarted book starts with the newest.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, PORTFOLIO_SNAPSHOT, RISK_ORDER, SIGNAL_TL
from tm_common.models.evidence import FORWARD_MODES, ShadowRecord
from tm_common.models.registry import ModelRecord, ModelRegistry

from tm_app.backtest import InProcessIdle, RunConfig, build_services
from tm_app.record import RunRecord
from tm_app.shadow.config import AUTO, AWAITING_EVIDENCE, EVIDENCE_MODE, ShadowSettings
from tm_app.shadow.instruments import FollowedFile
from tm_app.shadow.mirror import MARKET_STREAMS, Batch, MarketMirror
from tm_app.shadow.pinned import PinnedRegistry, resolve_candidate
from tm_app.shadow.venue import PaperVenue, require_paper

log = structlog.get_logger("tm.shadow")
EVIDENCE_STREAMS = (MD_BAR, SIGNAL_TL, PORTFOLIO_SNAPSHOT, RISK_ORDER)


def _now_ms() -> int:
    return int(time.time() * 1000)


class ShadowBook:
    """One candidate's shadow book (see the module doc).

    ``bus``: the book's own namespace (never production's: checked); ``source``: a bus on
    production's namespace, only read; ``registry``: production's model registry."""

    def __init__(self, settings: ShadowSettings, *, bus: RedisStreamsBus, source: RedisStreamsBus,
                 registry: ModelRegistry, run_id: str | None = None) -> None:
        self.settings, self.bus, self.source, self.registry = settings, bus, source, registry
        if bus.names.prefix == source.names.prefix:
            raise ValueError(f"a shadow book must not write into production's namespace "
                             f"{source.names.prefix!r}")
        # One record per book namespace: a restarted book replays the same window and
        # overwrites its record instead of adding an overlapping one.
        self.run_id = run_id or bus.names.prefix
        self.mode = EVIDENCE_MODE.get(settings.mode, "paper")
        self.candidate: ModelRecord | None = None
        self.venue: PaperVenue | None = None
        self.services: dict[str, Any] = {}
        self.consumers: list[Any] = []
        self.last_error: str | None = None
        self.switches: list[str] = []           # "<old> → <new>" for each candidate taken over
        self._reset()

    def _reset(self) -> None:
        """What a run of one candidate accumulates: at construction and at a switch."""
        s, source = self.settings, self.source
        self.mirror = MarketMirror(source.r, {st: source.key(st) for st in MARKET_STREAMS},
                                   s.symbols, from_ms=s.from_ms, flush_after_s=s.flush_after_s)
        self.first_bar_ms: int | None = None
        self.last_bar_ms: int | None = None
        self._times: set[int] = set()          # bar times traded (6 a day)
        #: the first bar open time the record covers (forward modes: the candidate's
        #: registration; replay: 0, the whole run); set by open()
        self.evidence_from_ms = 0
        self._since_evidence = 0
        self.evidence: ShadowRecord | None = None
        self.instruments = FollowedFile(s.instruments_file)
        self.instruments_followed: dict[str, int] = {}   # symbol → changes taken after open
        self.instruments_error: str | None = None

    # -- start -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Resolve the candidate, wipe the book's namespace, build and warm up the services."""
        self.candidate = await resolve_candidate(self.registry, self.settings.candidate)
        self.evidence_from_ms = self.candidate.created_at_ms if self.mode in FORWARD_MODES \
            else 0
        await self._wipe()
        s = self.settings
        self.instruments.changed()          # the file as it is now is what the account serves
        listed = s.instruments_file if s.instruments_file and s.instruments_file.exists() \
            else None                       # not there yet: the shipped filters until it is
        self.venue = require_paper(PaperVenue(s.symbols, initial_balance=s.initial_equity_usdt,
                                              slippage_bps=s.slippage_bps, seed=s.seed,
                                              instruments_file=listed,
                                              history_dir=s.history_dir))
        cfg = RunConfig(start_ms=0, end_ms=0, database_url=s.database_url or "",
                        symbols=s.symbols, initial_equity=s.initial_equity_usdt,
                        history_dir=s.history_dir)
        pinned = PinnedRegistry(self.registry, {"signal": self.candidate.version})
        self.services = build_services(self.bus, cfg, self.venue, registry=pinned, ingest=False,
                                       tag="shadow", namespace=self.bus.names.prefix)
        self.consumers = [c for p in self.services.values() for c in p.consumers]
        for c in self.consumers:
            await c.start()
        for p in self.services.values():
            await p.warm_up()
        log.info("shadow.open", candidate=self.candidate.version, run_id=self.run_id,
                 namespace=self.bus.names.prefix, source=self.source.names.prefix, mode=self.mode)

    async def _wipe(self) -> None:
        prefix = self.bus.names.prefix
        if "shadow" not in prefix:           # the settings refuse it too; never wipe elsewhere
            raise ValueError(f"refusing to wipe {prefix!r}: not a shadow namespace")
        keys = [k async for k in self.bus.r.scan_iter(match=f"{prefix}*", count=1000)]
        for i in range(0, len(keys), 500):
            await self.bus.r.delete(*keys[i:i + 500])

    # -- run -------------------------------------------------------------------------------
    async def step(self, block_ms: int = 1000) -> int:
        """Trade every bar time that is complete now; returns how many."""
        batches = await self.mirror.read(block_ms)
        for b in batches:
            await self.apply(b)
        return len(batches)

    async def apply(self, batch: Batch) -> None:
        """One bar time: the paper venue first (a bar is there before the orders it causes),
        then the events into the book's streams, then every consumer until idle.

        Every consumer is drained before an event of another stream than the one before it is
        published (DVOL and funding are handled before the bars they precede, as production's
        replay waits for its services after them). Entries of two streams added in the same
        millisecond tie, and a consumer takes a tie in the order it lists its streams (the
        signal service: bars first), so without the drain a bar published in the millisecond of
        the funding rate before it would be handled before that rate, or not, as the wall clock
        ticked (``tests/integration/shadow/test_book_arrival_timing.py``)."""
        venue = self.venue
        assert venue is not None, "open() first"
        idle = InProcessIdle(self.consumers)
        if self.follow_instruments(venue):
            # the book's executor reads them now (its timed refresh does not run in a book)
            # and risk takes its InstrumentsChanged before the bar time's events
            await self.services["executor"].handlers["instruments"].refresh_once()
            await idle.wait_done(batch.bar_time_ms or 0)
        venue.push(batch.bars, batch.funding)
        previous: str | None = None
        for stream, env in batch.events:
            if previous is not None and stream != previous:
                await idle.wait_done(batch.bar_time_ms or 0)
            await self.bus.publish(stream, env)
            previous = stream
        await idle.wait_done(batch.bar_time_ms or 0)
        t = batch.bar_time_ms
        if t is not None and t not in self._times:
            self._times.add(t)
            self.first_bar_ms = t if self.first_bar_ms is None else min(self.first_bar_ms, t)
            self.last_bar_ms = t if self.last_bar_ms is None else max(self.last_bar_ms, t)
            if t >= self.evidence_from_ms:
                self._since_evidence += 1
            if self._since_evidence >= self.settings.evidence_every_bars:
                await self.write_evidence()

    def follow_instruments(self, venue: PaperVenue) -> list[str]:
        """Take what the instruments file was rewritten with since the last look; returns the
        symbols whose filters changed. An unreadable file is shown (``/status``, the log) and
        the account keeps the filters it has."""
        try:
            doc = self.instruments.changed()
            if doc is None:
                return []
            changed = venue.follow(doc, source=f"instruments file {self.instruments.path}")
        except ValueError as e:
            self.instruments_error = str(e)
            log.warning("shadow.instruments_unreadable", error=self.instruments_error)
            return []
        self.instruments_error = None
        for sym in changed:
            self.instruments_followed[sym] = self.instruments_followed.get(sym, 0) + 1
        if changed:
            log.info("shadow.instruments_followed", symbols=changed)
        return changed

    @property
    def bar_times(self) -> int:
        """Distinct bar times traded (a backfill's symbols arrive one after the other)."""
        return len(self._times)

    async def run(self, stop: asyncio.Event) -> None:
        """Open (retrying every 5 s while the registry or Redis is not there), then follow
        production's market streams until ``stop``, checking the candidate every
        ``candidate_check_s``; the evidence is written once more at stop."""
        checked = time.monotonic()
        every = self.settings.candidate_check_s
        try:
            while not stop.is_set():
                if self.venue is None:
                    if not await self._try_open():
                        await _wait(stop, 5.0)
                    continue
                await self.step(block_ms=500)
                if every and time.monotonic() - checked >= every:
                    checked = time.monotonic()
                    await self.follow_candidate()
        finally:
            if self.venue is not None and self.bar_times:
                await self.write_evidence()

    async def _try_open(self) -> bool:
        try:
            await self.open()
        except Exception as e:  # noqa: BLE001 - said on /readyz and in the log; retried
            self.venue = None
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("shadow.open_failed", error=self.last_error)
            return False
        self.last_error = None
        return True

    async def follow_candidate(self) -> bool:
        """With ``auto`` or ``awaiting-evidence``: if the registry names another candidate now
        (a newly trained one waiting for evidence, or the next after this one was promoted or
        has its days), write this one's record, then wipe the namespace and open the book again
        for the new one, from the start of production's streams. True when it switched; a
        registry that does not answer keeps the candidate (said in ``last_error``)."""
        if self.settings.candidate not in (AUTO, AWAITING_EVIDENCE) or self.candidate is None:
            return False
        try:
            now = await resolve_candidate(self.registry, self.settings.candidate)
        except Exception as e:  # noqa: BLE001 - keep trading the one it has; said on /status
            self.last_error = f"candidate check: {type(e).__name__}: {e}"
            log.warning("shadow.candidate_check_failed", error=self.last_error)
            return False
        if now.version == self.candidate.version:
            return False
        old = self.candidate.version
        await self.write_evidence()
        log.info("shadow.candidate_changed", previous=old, candidate=now.version,
                 choice=self.settings.candidate)
        self._reset()
        self.venue = None
        self.switches.append(f"{old} → {now.version}")
        await self._try_open()              # else run() tries again every 5 s
        return True

    # -- evidence --------------------------------------------------------------------------
    async def record(self) -> RunRecord:
        """The book's run so far, read back from its namespace."""
        return await RunRecord.from_bus(self.bus)

    async def write_evidence(self) -> ShadowRecord | None:
        """The record of the bars from :attr:`evidence_from_ms` on into the candidate's
        registry row; None (nothing written) before the first of them."""
        from tm_app.stats import stats_from

        assert self.candidate is not None
        times = sorted(t for t in self._times if t >= self.evidence_from_ms)
        if not times:
            return None
        rec = await RunRecord.from_bus(self.bus, streams=EVIDENCE_STREAMS)
        st = stats_from(rec, float(self.settings.initial_equity_usdt), self.evidence_from_ms)
        tot = st["total"]
        self.evidence = ShadowRecord(
            run_id=self.run_id, mode=self.mode, first_bar_ms=times[0], last_bar_ms=times[-1],
            bars=len(times), total_return=float(tot.get("total_return", float("nan"))),
            sharpe=float(tot.get("sharpe", float("nan"))),
            max_drawdown=float(tot.get("max_drawdown", float("nan"))),
            ic=float(st["signal_ic"].get("all", float("nan"))), orders=st["orders"],
            updated_at_ms=_now_ms())
        await self.registry.record_shadow(self.candidate.version, self.evidence)
        self._since_evidence = 0
        return self.evidence

    def status(self) -> dict[str, Any]:
        return {"candidate": None if self.candidate is None else self.candidate.version,
                "run_id": self.run_id, "mode": self.mode, "namespace": self.bus.names.prefix,
                "source_namespace": self.source.names.prefix, "bar_times": self.bar_times,
                "first_bar_ms": self.first_bar_ms, "last_bar_ms": self.last_bar_ms,
                "evidence_from_ms": self.evidence_from_ms, "switches": list(self.switches),
                "mirror": dict(self.mirror.counts.__dict__), "last_error": self.last_error,
                "instruments": {"file": None if self.instruments.path is None
                                else str(self.instruments.path),
                                "followed": dict(self.instruments_followed),
                                "error": self.instruments_error},
                "evidence": None if self.evidence is None else self.evidence.to_json()}


async def _wait(stop: asyncio.Event, secs: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), secs)
    except TimeoutError:
        pass
