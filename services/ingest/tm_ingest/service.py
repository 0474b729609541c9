"""The ingest service: one source (live, replay or off), the publisher, the DB writer, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from prometheus_client import Counter, Gauge
from tm_common.bus import Bus
from tm_common.events import BarClosed

from tm_ingest.config import IngestSettings
from tm_ingest.publisher import BarPublisher
from tm_ingest.repository import MarketRepository
from tm_ingest.sources.dvol import DeribitDvolClient, DvolPoller
from tm_ingest.sources.funding import FundingPoller
from tm_ingest.sources.funding_gate import FundingGate
from tm_ingest.sources.live import LiveSource
from tm_ingest.sources.marks import MarkPoller
from tm_ingest.sources.replay import (
    GroupsIdleProbe,
    HistoryBars,
    ReplaySource,
    history_dvol,
    history_funding,
)
from tm_ingest.sources.rest import BybitRestClient

T = TypeVar("T")

log = structlog.get_logger("tm.ingest")


class IngestMetrics:
    def __init__(self, registry) -> None:
        self.bars = Counter("tm_ingest_bars_published", "Bars published to md.bar",
                            ["instrument", "source"], registry=registry)
        self.skipped = Counter("tm_ingest_bars_skipped", "Bars not re-published",
                               ["instrument", "reason"], registry=registry)
        self.gaps = Counter("tm_ingest_gaps", "Holes in the bar sequence detected", ["instrument"],
                            registry=registry)
        self.gap_bars = Counter("tm_ingest_gap_bars", "Bars missing in detected holes",
                                ["instrument"], registry=registry)
        self.bad_input = Counter("tm_ingest_bad_input", "Malformed frames/rows dropped", ["source"],
                                 registry=registry)
        self.reconnects = Counter("tm_ingest_ws_reconnects", "WebSocket (re)connections",
                                  registry=registry)
        self.last_bar = Gauge("tm_ingest_last_bar_open_time_seconds", "Newest published bar",
                              ["instrument"], registry=registry)
        self.db_backlog = Gauge("tm_ingest_db_backlog", "Row batches waiting for the database",
                                registry=registry)
        self.marks = Counter("tm_ingest_marks_published", "Intra-bar marks published to md.mark",
                             ["instrument"], registry=registry)
        self.funding_gate = Counter(
            "tm_ingest_funding_gate_bars", "Bars closing at a funding settlement, by whether "
            "their rate was published before them (held) or not within TM_INGEST_FUNDING_WAIT_S "
            "(late: scored on the previous rate)", ["instrument", "result"], registry=registry)
        self.state_changes = Counter(
            "tm_ingest_publish_state_changes", "Publications refused because another ingest "
            "instance had published first (decided again on the state read back)",
            registry=registry)
        self.replay_progress = Gauge("tm_ingest_replay_progress_ratio", "Replay steps done / total",
                                     registry=registry)


class IngestService:
    """Owns the source tasks; the app runs :meth:`background` in the background.

    ``registry``: the Prometheus registry. ``clock``: ns stamped as ``ts_init_ns`` on what is
    published, and the "now" of the funding poller's window. ``venue``: an in-process venue whose ``advance(bar_time_ms)`` a replay calls
    before each bar time (``None``: ``replay_venue_url`` over HTTP, if set)."""

    def __init__(self, settings: IngestSettings, bus: Bus, *, repo: MarketRepository | None,
                 registry=None, clock: Callable[[], int] = time.time_ns, venue=None) -> None:
        self.s, self.bus, self.repo, self.venue = settings, bus, repo, venue
        self.clock = clock
        self.metrics = IngestMetrics(registry)
        if repo is not None:   # read at each scrape: back to 0 once the writer caught up
            self.metrics.db_backlog.set_function(lambda: repo.backlog)
        self.publisher = _InstrumentedPublisher(
            self, bus, f"{settings.namespace}state:ingest:publisher", clock)
        self.live: LiveSource | None = None
        self.replay: ReplaySource | None = None
        self.funding: FundingPoller | None = None
        self.funding_gate: FundingGate | None = None
        self.marks: MarkPoller | None = None
        self.replay_done = False
        self.started = False
        self.stop_requested = lambda: False
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        """Load the publisher's exactly-once state (idempotent; every source awaits it first)."""
        async with self._start_lock:
            if not self.started:
                await self.publisher.load()
                self.started = True

    def background(self) -> dict[str, Any]:
        """name → ``async fn(stop_event)`` for the service runtime."""
        out: dict[str, Any] = {}
        if self.repo is not None:
            out["db-writer"] = self._db_writer
        if self.s.mode == "live":
            rest = BybitRestClient(self.s.bybit_rest_url,
                                   on_bad_row=lambda r: self.metrics.bad_input.labels("rest").inc())

            def clock_ms() -> int:
                return self.clock() // 1_000_000

            intervals: dict[str, int] = {}          # instruments-info's, kept by the live source
            if self.s.funding_enabled:
                self.funding = FundingPoller(rest, self.publisher.publish_funding, self.s.symbols,
                                             last_published=self.publisher.last_funding_ms,
                                             interval_s=self.s.funding_poll_s, clock_ms=clock_ms)
                out["funding"] = _until_stopped(self.funding.run, self.start)
                if self.s.funding_wait_s > 0:
                    self.funding_gate = FundingGate(
                        self.funding, wait_s=self.s.funding_wait_s, intervals_ms=intervals,
                        clock_ms=clock_ms,
                        on_result=lambda sym, r: self.metrics.funding_gate.labels(sym, r).inc())
            self.live = LiveSource(self.s.bybit_ws_url, rest, self.publisher, self.s.symbols,
                                   backfill_bars=self.s.backfill_bars,
                                   backfill_start_ms=self.s.backfill_start_ms, ping_s=self.s.ws_ping_s,
                                   deadline_pings=self.s.ws_dead_after_pings,
                                   before_publish=(self.funding_gate.before
                                                   if self.funding_gate else None),
                                   funding_interval_ms=intervals)
            live = self.live

            async def run_live(stop):
                await self.start()
                waiter = asyncio.create_task(stop.wait())
                runner = asyncio.create_task(live.run())
                await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
                live.stop()
                await runner
                waiter.cancel()
            out["live"] = run_live
            if self.s.dvol_enabled:
                poller = DvolPoller(DeribitDvolClient(self.s.deribit_url), self.publisher.publish_dvol,
                                    interval_s=self.s.dvol_poll_s)
                out["dvol"] = _until_stopped(poller.run, self.start)
            if self.s.mark_poll_s > 0:
                self.marks = MarkPoller(
                    rest, self.publisher.publish_marks, self.s.symbols,
                    interval_s=self.s.mark_poll_s, clock_ms=lambda: self.clock() // 1_000_000,
                    on_error=lambda r: self.metrics.bad_input.labels("ticker").inc())
                out["marks"] = _until_stopped(self.marks.run, self.start)
        elif self.s.mode == "replay":
            async def run_replay(stop):
                await self.start()
                if not self.replay_done:
                    self.stop_requested = stop.is_set
                    await self.run_replay()
            out["replay"] = run_replay
        else:                                    # "off": publishes nothing, but is up and ready
            async def load_state(stop):
                await self.start()
            out["state"] = load_state
        return out

    async def _db_writer(self, stop: asyncio.Event) -> None:
        """Write rows until stopped, then let the writer land what is queued (a bar published
        just before a shutdown, or held through a database outage) for a few seconds more."""
        assert self.repo is not None
        task = asyncio.create_task(self.repo.run())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not await self.repo.flush(timeout_s=5.0):
            # Not lost for good: md.bar holds the same bars, and a restart backfills them.
            log.warning("ingest.db_flush_incomplete", backlog=self.repo.backlog)
        task.cancel()
        waiter.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def run_replay(self) -> int:
        s = self.s
        bars = HistoryBars(s.symbols, s.replay_start_ms, s.replay_end_ms, s.history_dir)
        dvol = history_dvol(s.replay_start_ms, s.replay_end_ms, s.history_dir) if s.dvol_enabled else []
        funding = (history_funding(s.symbols, s.replay_start_ms, s.replay_end_ms, s.history_dir)
                   if s.funding_enabled else [])
        probe = GroupsIdleProbe(self.bus, timeout_s=s.replay_timeout_s) if s.replay_lockstep else None
        t0 = time.monotonic()

        def progress(p):
            self.metrics.replay_progress.set(p.step / p.steps)
            if p.step % 500 == 0 or p.step == p.steps:
                log.info("ingest.replay_progress", step=p.step, steps=p.steps, bar_time_ms=p.bar_time_ms,
                         published=p.published, secs=round(time.monotonic() - t0, 1))
        self.replay = ReplaySource(self.publisher, bars, dvol, funding=funding, probe=probe,
                                   pace_s=s.replay_pace_s,
                                   on_progress=progress, should_stop=self.stop_requested,
                                   before_step=self._venue_clock())
        n = await self.replay.run()
        self.replay_done = True
        log.info("ingest.replay_done", published=n, secs=round(time.monotonic() - t0, 2))
        return n

    def _venue_clock(self):
        """The hook that moves the simulator's replay clock to each bar time (None: no sim)."""
        if self.venue is not None:
            venue = self.venue

            async def advance(t: int) -> None:
                venue.advance(t)
            return advance
        url = self.s.replay_venue_url
        if not url:
            return None
        import httpx

        client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=30)
        headers = {}
        if self.s.admin_token is not None:
            headers["Authorization"] = f"Bearer {self.s.admin_token.get_secret_value()}"

        moved: list[int] = []                       # the bar time this process moved it to

        async def step(t: int) -> None:
            # Asked only when this process has not moved the clock yet (a resumed run: the
            # venue may be there already); after that it is where we left it.
            if not moved or moved[0] >= t:
                r = await client.get("/sim/clock")
                if r.status_code == 200 and r.json().get("clock_ms", -1) >= t:
                    return                          # resumed run: the venue is already there
            moved.clear()
            r = await client.post("/sim/clock", json={"bar_time_ms": t}, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"sim clock to {t}: HTTP {r.status_code}: {r.text[:200]}")
            moved.append(t)
        return step

    def _marks_status(self) -> dict[str, Any]:
        """``/status`` ``marks``: on (poll interval, counts, newest mark time per symbol) or off
        and why."""
        m = self.marks
        if m is None:
            why = ("TM_INGEST_MARK_POLL_S=0" if self.s.mode == "live" and self.s.mark_poll_s == 0
                   else f"mode {self.s.mode}")
            return {"enabled": False, "off_because": why}
        return {"enabled": True, "poll_s": m.interval_s, "published": m.published,
                "errors": m.errors, "rounds": m.rounds, "last_at_ms": dict(m.last_at_ms)}

    def _funding_gate_status(self) -> dict[str, Any]:
        """``/status`` ``funding_gate``: settlement bars held for their rate, published without
        it (late) and failed polls; or off."""
        g = self.funding_gate
        if g is None:
            return {"enabled": False}
        return {"enabled": True, "wait_s": g.wait_s, "held": g.held, "late": g.late,
                "errors": g.errors}

    def status(self) -> dict[str, Any]:
        st = self.publisher.stats
        doc: dict[str, Any] = {"mode": self.s.mode, "symbols": list(self.s.symbols),
                               "published": st.published, "duplicates": st.duplicates,
                               "late": st.late, "gaps": st.gaps, "gap_bars": st.gap_bars,
                               "dvol_published": st.dvol_published,
                               "funding_published": st.funding_published,
                               "state_changes": st.state_changes,
                               "marks": self._marks_status(),
                               "funding_gate": self._funding_gate_status(),
                               "last_bar_open_time_ms": st.last_bar_ms}
        if self.live is not None:
            c = self.live.counters
            doc["live"] = {"connected": self.live.connected, "connects": c.connects,
                           "bad_frames": c.bad_frames, "backfilled": c.backfilled, "errors": c.errors,
                           "ended_listings": dict(self.live.ended)}
        if self.s.mode == "replay":
            doc["replay_done"] = self.replay_done
        if self.repo is not None:
            doc["db"] = {"backlog": self.repo.backlog, "written": self.repo.written,
                         "failures": self.repo.failures}
        return doc


class _InstrumentedPublisher(BarPublisher):
    """The publisher, reporting to metrics and the DB writer."""

    def __init__(self, svc: IngestService, bus: Bus, state_key: str,
                 clock: Callable[[], int] = time.time_ns) -> None:
        def on_gap(inst: str, n: int) -> None:
            svc.metrics.gaps.labels(inst).inc()
            svc.metrics.gap_bars.labels(inst).inc(n)

        super().__init__(bus, state_key, clock=clock, on_gap=on_gap,
                         on_state_change=svc.metrics.state_changes.inc)
        self.svc = svc

    async def _saved(self, published: Awaitable[list[T]], attempted: Callable[[], list[T]],
                     save: Callable[[MarketRepository, list[T]], None]) -> list[T]:
        """Await ``published`` and hand what it published to the DB writer (``save``). On a
        failure, save what it attempted: the transaction may have landed with its reply lost,
        and a retry would then find these rows published and not return them. Rows are
        idempotent upserts."""
        repo = self.svc.repo
        try:
            out = await published
        except BaseException:
            if repo is not None and attempted():
                save(repo, attempted())
            raise
        if repo is not None:
            save(repo, out)
        return out

    async def publish_bars(self, bars):
        dup, late = self.stats.duplicates, self.stats.late
        out: list[BarClosed] = await self._saved(super().publish_bars(bars),
                                                 lambda: self.attempted,
                                                 MarketRepository.save_bars)
        m = self.svc.metrics
        for b in out:
            m.bars.labels(b.instrument, b.source).inc()
            m.last_bar.labels(b.instrument).set(b.open_time_ms / 1000)
        if self.stats.duplicates > dup:
            m.skipped.labels("*", "duplicate").inc(self.stats.duplicates - dup)
        if self.stats.late > late:
            m.skipped.labels("*", "late").inc(self.stats.late - late)
        return out

    async def publish_dvol(self, points):
        return await self._saved(super().publish_dvol(points), lambda: self.attempted_dvol,
                                 MarketRepository.save_dvol)

    async def publish_funding(self, rates):
        return await self._saved(super().publish_funding(rates), lambda: self.attempted_funding,
                                 MarketRepository.save_funding)

    async def publish_marks(self, marks):
        out = await super().publish_marks(marks)
        for m in out:
            self.svc.metrics.marks.labels(m.instrument).inc()
        return out


def _until_stopped(run, before=None):
    """Wrap a run-forever coroutine function as ``async fn(stop_event)``."""
    async def wrapper(stop):
        if before is not None:
            await before()
        task = asyncio.create_task(run())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        waiter.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return wrapper

