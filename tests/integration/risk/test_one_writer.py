"""One writer per stateful service (ARCHITECTURE §9, invariant 8), on the real Redis.

1. A partial mesh, in this process, each service from its own ``build`` on a Redis bus: risk,
   the executor (against the in-process venue: the exchange simulator's matching engine) and
   the portfolio; shipped bars on ``md.bar`` and scripted targets on ``sizing.target`` in
   lockstep. Mid-run, while risk A holds the bar's last target (its orders computed, not yet
   committed), a second risk service B starts on the same consumer group. A's commit is refused
   and nothing of it lands (no order, no state write, no ack); A stops; B finishes the run. The
   approved orders, the venue's orders, the final equity and risk's saved state equal a clean
   run's.
2. Two ``python -m tm_risk`` processes: the first one, superseded, stops consuming and says so
   (log line, ``/readyz`` 503 with the ``writer`` check, ``/metrics``), and the second one makes
   the order the first one could not commit.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from decimal import Decimal

import pytest
import tm_risk.commands  # noqa: F401 - registers breaker.command_issued for decoding
from tm_app.venue import InProcessBybit
from tm_common.bus import WriterSuperseded
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, PORTFOLIO_SNAPSHOT, RISK_ORDER, SIZING_TARGET
from tm_common.events import Envelope, OrderApproved, PositionSized
from tm_common.service.wiring import state_key
from tm_common.testing.redis import delete_namespace
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.serialise import order_dict, wallet_entry
from tm_executor.app import build as build_executor
from tm_executor.config import ExecutorSettings
from tm_ingest.publisher import bar_envelope
from tm_ingest.sources.replay import history_bars
from tm_portfolio.app import build as build_portfolio
from tm_portfolio.config import PortfolioSettings
from tm_risk.app import build as build_risk
from tm_risk.config import RiskSettings
from tm_risk.instruments import from_venue
from tm_risk.testing import EQUITY, history, snapshot_env, target_env

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START_MS = 1_735_689_600_000            # 2025-01-01 00:00 UTC
BAR_MS = 4 * 3600 * 1000
BARS = 36
SWITCH_AT = 20                          # B starts while A holds this bar's last target
CYCLE = (0.4, -0.3, 0.0, 0.25, -0.15, 0.1)   # scripted targets: the window trades both ways


def _target(sym: str, i: int, t: int) -> Envelope:
    frac = CYCLE[(i + SYMBOLS.index(sym)) % len(CYCLE)]
    body = PositionSized(instrument=sym, bar_time_ms=t, target_fraction=frac, tier="FULL_RL",
                         reason="scripted")
    key = f"{sym}:{t}"
    return Envelope.root(body, key=key, correlation_id=key,
                         ts_event_ns=(t + BAR_MS) * 1_000_000, ts_init_ns=0)


class PartialMesh:
    """risk, executor, portfolio on one Redis namespace, stepped in lockstep."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        self.redis_url, self.ns = redis_url, namespace
        self.venue = InProcessBybit.from_settings(ExchangeSimSettings(
            sim_symbols=list(SYMBOLS), sim_start_ms=START_MS, sim_initial_balance=EQUITY,
            sim_seed=42, sim_slippage_bps=Decimal(2)))
        common = {"namespace": namespace, "redis_url": redis_url, "symbols": SYMBOLS,
                  "read_block_ms": 1}
        self.buses: list[RedisStreamsBus] = []
        # VaR and HRP on 8 returns (default 60 and 30): a short window that trades
        self.risk_settings = RiskSettings(service_name="risk", consumer_name="risk-a",
                                          mode="backtest", var_min_obs=8, hrp_min_obs=8, **common)
        self.risk = build_risk(self.risk_settings, bus=self._bus(), venue=self.venue,
                               clock=lambda: 0)
        self.executor = build_executor(ExecutorSettings(
            service_name="executor", consumer_name="executor-0", bybit_rest_url=self.venue.endpoint,
            order_history_fallback=False, **common), bus=self._bus(), venue=self.venue,
            clock=lambda: 0)
        self.portfolio = build_portfolio(PortfolioSettings(
            service_name="portfolio", consumer_name="portfolio-0", db_enabled=False,
            initial_equity=EQUITY, **common), bus=self._bus(), clock=lambda: 0)
        self.consumers = [*self.portfolio.consumers, *self.risk.consumers,
                          *self.executor.consumers]
        self.bus = self._bus()

    def _bus(self) -> RedisStreamsBus:
        self.buses.append(RedisStreamsBus(self.redis_url, prefix=self.ns))
        return self.buses[-1]

    async def second_risk(self):
        """Risk B: the same service and group, another pod name."""
        s = self.risk_settings.model_copy(update={"consumer_name": "risk-b"})
        parts = build_risk(s, bus=self._bus(), venue=self.venue, clock=lambda: 0)
        parts.handler.set_instruments(await from_venue(self.venue), "in-process venue")
        return parts

    async def start(self) -> None:
        for c in self.consumers:
            await c.start()
        await self.executor.warm_up()
        await self.risk.warm_up()

    async def idle(self) -> None:
        """Step every live consumer round-robin until none has work (the backtest's probe)."""
        while True:
            live = [c for c in self.consumers if c.superseded is None]
            n = 0
            for c in live:
                n += await c.step(block_ms=None)
            if n == 0 and not any(c._pending_dirty for c in live):
                return

    async def run(self, on_bar=None) -> None:
        bars = history_bars(SYMBOLS, START_MS, START_MS + (BARS - 1) * BAR_MS)
        times = sorted({b.open_time_ms for b in bars})
        assert len(times) == BARS
        for i, t in enumerate(times):
            self.venue.advance(t)
            for b in sorted((b for b in bars if b.open_time_ms == t), key=lambda b: b.instrument):
                await self.bus.publish(MD_BAR, bar_envelope(b, 0))
            await self.idle()
            if on_bar is not None:
                await on_bar(i)
            for sym in SYMBOLS:
                await self.bus.publish(SIZING_TARGET, _target(sym, i, t))
            await self.idle()

    async def result(self) -> dict:
        orders = [(f["event_id"], json.loads(f["body"]))
                  for _, f in await self.bus.entries(RISK_ORDER)]
        snaps = [json.loads(f["body"]) for _, f in await self.bus.entries(PORTFOLIO_SNAPSHOT)]
        eng = self.venue.state.engine
        venue_orders = sorted((o["orderLinkId"], o["side"], o["qty"], o["avgPrice"])
                              for o in map(order_dict, eng.orders.values()))
        return {"orders": orders, "equity": snaps[-1]["equity"], "snapshots": len(snaps),
                "venue_orders": venue_orders, "venue_equity": wallet_entry(eng)["totalEquity"],
                "risk_state": await self.bus.load_state(state_key(self.risk_settings))}

    async def close(self) -> None:
        for b in self.buses:
            await b.close()
        delete_namespace(self.redis_url, self.ns)


@pytest.mark.timeout(120)
async def test_a_second_risk_service_mid_run_changes_nothing(redis_url):
    t0 = time.monotonic()
    clean = PartialMesh(redis_url, f"tmtest:{uuid.uuid4().hex[:8]}:clean:")
    try:
        await clean.start()
        await clean.run()
        expected = await clean.result()
    finally:
        await clean.close()
    assert len(expected["orders"]) > 10 and expected["venue_orders"]   # the window trades
    assert Decimal(expected["equity"]) != EQUITY

    mesh = PartialMesh(redis_url, f"tmtest:{uuid.uuid4().hex[:8]}:fenced:")
    a = mesh.risk.consumers[0]
    b_parts = await mesh.second_risk()
    b = b_parts.consumers[0]
    seen: dict = {}
    real_handle, real_commit, real_commit_many = a.handler.handle, a.bus.commit, a.bus.commit_many
    key = state_key(mesh.risk_settings)

    async def handle_then_b_starts(event):
        out = await real_handle(event)
        if event.type == "position.sized" and out and "would_write" not in seen and \
                event.body.bar_time_ms == START_MS + SWITCH_AT * BAR_MS:
            # A has computed the bar's orders and not committed them: B starts now
            seen["would_write"], seen["outputs"] = a.handler.snapshot(), len(out)
            await b.start()
            seen["state"] = await mesh.bus.load_state(key)
            seen["orders"] = await mesh.bus.length(RISK_ORDER)
        return out

    async def look(commit, entries, *args, **kw):
        try:
            await commit(*args, **kw)
        except WriterSuperseded:
            # right after the refusal: no state write, no order, the entries not acked
            seen["refused"] = (await mesh.bus.load_state(key), await mesh.bus.length(RISK_ORDER),
                               (await mesh.bus.group_info(SIZING_TARGET))[0]["pending"])
            seen["entries"] = entries
            raise

    async def commit_then_look(*args, **kw):
        await look(real_commit, 1, *args, **kw)

    async def commit_many_then_look(*args, **kw):     # a read's entries committed together
        await look(real_commit_many, len(args[2]), *args, **kw)
    a.handler.handle, a.bus.commit = handle_then_b_starts, commit_then_look
    a.bus.commit_many = commit_many_then_look

    try:
        await mesh.start()
        mesh.consumers.append(b)
        await mesh.run()
        got = await mesh.result()
    finally:
        await mesh.close()
    assert "would_write" in seen, "B never started: the switch bar made no order"
    assert seen["outputs"] > 0 and seen["would_write"] != seen["state"]
    assert seen["refused"] == (seen["state"], seen["orders"], seen["entries"])
    assert (a.generation, b.generation) == (1, 2)
    assert a.superseded is not None and a.superseded.current == 2 and a.stopping
    assert b.handled_count > 0
    assert got == expected     # orders (ids, bodies), equity, venue orders and equity, risk state
    print(f"\none writer: {len(got['orders'])} orders, equity {got['equity']}, "
          f"{time.monotonic() - t0:.1f} s for both runs")


def test_a_superseded_risk_process_stops_and_says_so(risk_process, streams, redis_url, namespace,
                                                     wait):
    import redis

    fast_reclaim = {"TM_RECLAIM_IDLE_MS": "300", "TM_RECLAIM_INTERVAL_S": "0.2"}
    a = risk_process(**fast_reclaim)
    bars, closes = history(80)
    streams.publish(MD_BAR, bars)
    streams.publish(PORTFOLIO_SNAPSHOT, [snapshot_env(79, EQUITY)])
    last = {s: bars[-1].body.open_time_ms for s in SYMBOLS}
    wait(lambda: (x := a.get("/status").json()["extra"])["equity"] == str(EQUITY)
         and x["last_bar_open_ms"] == last, 15, "bars and snapshot handled by A")
    st = a.get("/status").json()
    assert st["writer"] == {"risk": {"generation": 1, "superseded": None}}

    b = risk_process(TM_CONSUMER_NAME="risk-1", **fast_reclaim)    # a rollout's new pod
    assert b.get("/status").json()["writer"]["risk"]["generation"] == 2
    r = redis.Redis.from_url(redis_url)
    state = r.get(namespace + "state:risk")
    b.proc.send_signal(signal.SIGSTOP)          # B holds still: A alone reads what comes next
    try:
        streams.publish(SIZING_TARGET, [target_env(s, 79, 0.25 if s == "ETHUSDT" else 0.0)
                                        for s in SYMBOLS])
        ready = wait(lambda: (x := a.get("/readyz")).status_code == 503 and x.json(), 15,
                     "A not ready")
        assert "writer" in ready["not_ready"]
        assert ready["checks"]["writer"] == (
            "superseded: consumer group 'risk': writer generation 1 was superseded by "
            "generation 2; this instance stopped consuming")
        metrics = a.get("/metrics").text
        assert 'tm_consumer_writer_superseded{group="risk"} 1.0' in metrics
        assert 'tm_consumer_writer_generation{group="risk"} 1.0' in metrics
        assert "bus.writer_superseded" in a.logs()
        # nothing of A's refused commit landed: same state, no order, no target acked (those
        # A read are pending on it, the rest not delivered yet)
        assert r.get(namespace + "state:risk") == state
        assert streams.bodies(RISK_ORDER) == []
        g = streams.group(SIZING_TARGET, "risk")
        assert g["pending"] >= 1 and g["pending"] + g["lag"] == 3
    finally:
        b.proc.send_signal(signal.SIGCONT)
        r.close()
    # B takes A's pending targets over once idle (300 ms) and makes the order A could not
    (o,) = wait(lambda: streams.bodies(RISK_ORDER), 15, "B's order")
    assert isinstance(o, OrderApproved)
    assert (o.instrument, o.side) == ("ETHUSDT", "Buy")
    assert o.qty == (EQUITY / 4 / closes["ETHUSDT"][-1]).quantize(Decimal("0.01"), "ROUND_DOWN")
    wait(lambda: streams.group(SIZING_TARGET, "risk")["pending"] == 0, 15, "targets acked")
    assert a.get("/status").json()["handled"] == st["handled"]     # A handled nothing more
    assert a.get("/readyz").status_code == 503 and b.get("/readyz").status_code == 200
