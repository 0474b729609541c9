"""The executor against the exchange sim (real HTTP via pybit, real WebSocket) and real Redis:
in-process (:class:`ExecutorService`) or as a real process (``python -m tm_executor``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from decimal import Decimal

import pytest
import redis
from pydantic import SecretStr
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import EXEC_REPORT, MD_BAR, RISK_ORDER
from tm_common.events import BarClosed, Envelope, OrderApproved, PortfolioSnapshotted, PositionView
from tm_common.testing.processes import ServiceProcess, stopped_after
from tm_common.testing.sim import KEY, QUIET_FAULTS, SECRET, Sim, run_sim
from tm_common.testing.wait import wait_for as wait_sync  # noqa: F401 - tests import it from here
from tm_common.testing.wait import wait_for_async as wait_async  # noqa: F401 - likewise
from tm_executor.config import ExecutorSettings
from tm_executor.domain.ids import account_tag, order_link_id

START_MS = 1_672_531_200_000          # 2023-01-01 00:00, inside the shipped history
BAR_MS = 4 * 3600 * 1000
# The close the guard values market intents with (tm_executor.domain.guard): each intent's bar
# is published on md.bar before it, as ingest does. Of the order of the 2023 prices.
GUARD_CLOSE = {"BTCUSDT": Decimal(16_500), "ETHUSDT": Decimal(1_200), "SOLUSDT": Decimal(10),
               "ZZZUSDT": Decimal(2)}       # tm_common.testing.instrument_history
TERMINAL = ("order.reported", "order.rejected")


@pytest.fixture(scope="session")
def sim_server(tmp_path_factory):
    with run_sim(tmp_path_factory.mktemp("sim")) as sim:
        yield sim


@pytest.fixture
def sim(sim_server: Sim) -> Sim:
    """A fresh venue per test (100k USDT at 2023-01-01), no faults."""
    sim_server.post("/sim/faults", {**QUIET_FAULTS, "seed": 7})
    sim_server.post("/sim/reset", {"start_ms": START_MS, "initial_balance": "100000"})
    return sim_server


def executor_settings(sim: Sim, redis_url: str, namespace: str, **kw) -> ExecutorSettings:
    base = {"redis_url": redis_url, "namespace": namespace, "bybit_rest_url": sim.url,
            "bybit_private_ws_url": sim.ws_url + "/v5/private",
            "bybit_api_key": SecretStr(KEY), "bybit_api_secret": SecretStr(SECRET),
            "consumer_name": "executor-0", "read_block_ms": 100, "venue_timeout_s": 2.0,
            "lag_poll_interval_s": 0.5, "preflight_retry_s": 0.2,
            "reconcile_interval_s": 3600, "fill_poll_interval_s": 1.0, "log_json": True,
            "mode": "replay"}        # the venue runs on the 2023 replay clock, not the wall
    return ExecutorSettings(**{**base, **kw})


def intent_envelope(intent_id: str, instrument: str = "BTCUSDT", side: str = "Buy",
                    qty: str = "0.001", bar: int = 0, **kw) -> Envelope:
    bar_ms = START_MS + bar * 4 * 3600 * 1000
    body = OrderApproved(intent_id=intent_id, instrument=instrument, bar_time_ms=bar_ms,
                         side=side, qty=Decimal(qty), target_qty=Decimal(qty), **kw)
    return Envelope.root(body, key=intent_id, correlation_id=f"{instrument}:{bar_ms}",
                         ts_event_ns=bar_ms * 1_000_000, ts_init_ns=time.time_ns())


def bar_envelope(instrument: str, bar_ms: int) -> Envelope:
    close = GUARD_CLOSE[instrument]
    body = BarClosed(instrument=instrument, open_time_ms=bar_ms, close_time_ms=bar_ms + BAR_MS - 1,
                     open=close, high=close, low=close, close=close, volume=Decimal(1),
                     source="replay")
    return Envelope.root(body, key=f"{instrument}:{bar_ms}", correlation_id=f"{instrument}:{bar_ms}",
                         ts_event_ns=(bar_ms + BAR_MS) * 1_000_000, ts_init_ns=time.time_ns())


def snapshot(bar: int, positions: dict[str, str]) -> Envelope:
    """A portfolio snapshot after ``bar`` holding ``positions`` (signed quantities)."""
    bar_ms = START_MS + bar * 4 * 3600 * 1000
    body = PortfolioSnapshotted(
        bar_time_ms=bar_ms, equity=Decimal(100000), cash=Decimal(100000),
        realised_pnl=Decimal(0), unrealised_pnl=Decimal(0), fees=Decimal(0),
        funding=Decimal(0), peak_equity=Decimal(100000), drawdown=0.0,
        positions=tuple(PositionView(instrument=k, qty=Decimal(v), avg_price=Decimal(1),
                                     mark_price=Decimal(1), unrealised_pnl=Decimal(0))
                        for k, v in positions.items()))
    return Envelope.root(body, key=f"snap:{bar}", correlation_id=f"portfolio:{bar_ms}",
                         ts_event_ns=bar_ms * 1_000_000, ts_init_ns=time.time_ns())


async def publish_intents(bus: RedisStreamsBus, envs: list[Envelope]) -> None:
    """Each intent on ``risk.order``, after its bar on ``md.bar`` (once per instrument and bar)."""
    seen: set[tuple[str, int]] = set()
    for e in envs:
        key = (e.body.instrument, e.body.bar_time_ms)
        if key not in seen:
            seen.add(key)
            await bus.publish(MD_BAR, bar_envelope(*key))
        await bus.publish(RISK_ORDER, e)


def on_bus(coro_fn, redis_url: str, namespace: str):
    """``coro_fn(bus)`` on a bus of its own over ``namespace``, closed after; its result."""
    async def go():
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        try:
            return await coro_fn(bus)
        finally:
            await bus.close()
    return asyncio.run(go())


async def report_bodies(bus: RedisStreamsBus) -> list[tuple[str, dict]]:
    return [(f["type"], json.loads(f["body"])) for _, f in await bus.entries(EXEC_REPORT, 100_000)]


def terminal_by_intent(reports: list[tuple[str, dict]]) -> Counter:
    return Counter(b["intent_id"] for t, b in reports if t in TERMINAL)


def link_salt(redis_url: str, namespace: str) -> str | None:
    """The orderLinkId salt the executor of ``namespace`` keeps in Redis (None: none yet)."""
    r = redis.Redis.from_url(redis_url)
    try:
        got = r.get(f"{namespace}state:executor:link_salt:{account_tag(KEY)}")
    finally:
        r.close()
    return None if got is None else got.decode()


def link_of(redis_url: str, namespace: str, intent_id: str) -> str:
    """The orderLinkId of ``intent_id`` under that executor's salt."""
    salt = link_salt(redis_url, namespace)
    assert salt is not None, "no orderLinkId salt in Redis"
    return order_link_id(intent_id, salt)


def venue_orders_by_link(sim: Sim) -> Counter:
    return Counter(o["orderLinkId"] for o in sim.get("/sim/orders")["list"] if o["orderLinkId"])


@pytest.fixture
def executor_factory(tmp_path):
    """``executor_factory(sim, redis_url, namespace, *, start=True, wait_ready=True, **env)`` →
    ``python -m tm_executor`` as a :class:`ServiceProcess` on that venue (``/healthz``, and
    ``/readyz`` unless ``wait_ready`` is false, within 20 s each); all are stopped after the
    test."""
    with stopped_after() as group:
        def make(sim: Sim, redis_url: str, namespace: str, *, start: bool = True,
                 wait_ready: bool = True, **env: str) -> ServiceProcess:
            return group.add(ServiceProcess("tm_executor", {
                "TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace,
                "TM_CONSUMER_NAME": "executor-0", "TM_EXECUTOR_BYBIT_REST_URL": sim.url,
                "TM_EXECUTOR_BYBIT_PRIVATE_WS_URL": sim.ws_url + "/v5/private", "TM_EXECUTOR_BYBIT_API_KEY": KEY,
                "TM_EXECUTOR_BYBIT_API_SECRET": SECRET, "TM_READ_BLOCK_MS": "100",
                "TM_LAG_POLL_INTERVAL_S": "0.2", "TM_EXECUTOR_PREFLIGHT_RETRY_S": "0.2",
                "TM_EXECUTOR_VENUE_TIMEOUT_S": "2", "TM_EXECUTOR_RECONCILE_INTERVAL_S": "3600",
                "TM_EXECUTOR_FILL_POLL_INTERVAL_S": "1", "TM_MODE": "replay", **env},
                tmp_path / f"executor-{len(group)}.log"), start=start, healthy_within_s=20,
                ready_within_s=20 if wait_ready else None)
        yield make
