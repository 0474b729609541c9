"""The executor against the exchange sim (real HTTP via pybit, real WebSocket) and real Redis:
in-process (:class:`ExecutorService`) or as a real process (``python -m tm_executor``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import EXEC_REPORT, RISK_ORDER
from tm_common.events import Envelope, OrderApproved
from tm_common.testing.redis import free_port
from tm_common.testing.sim import KEY, QUIET_FAULTS, SECRET, Sim, run_sim
from tm_executor.config import ExecutorSettings

START_MS = 1_672_531_200_000          # 2023-01-01 00:00, inside the shipped history
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
            "reconcile_interval_s": 3600, "fill_poll_interval_s": 1.0, "log_json": True}
    return ExecutorSettings(**{**base, **kw})


def intent_envelope(intent_id: str, instrument: str = "BTCUSDT", side: str = "Buy",
                    qty: str = "0.001", bar: int = 0, **kw) -> Envelope:
    bar_ms = START_MS + bar * 4 * 3600 * 1000
    body = OrderApproved(intent_id=intent_id, instrument=instrument, bar_time_ms=bar_ms,
                         side=side, qty=Decimal(qty), target_qty=Decimal(qty), **kw)
    return Envelope.root(body, key=intent_id, correlation_id=f"{instrument}:{bar_ms}",
                         ts_event_ns=bar_ms * 1_000_000, ts_init_ns=time.time_ns())


async def publish_intents(bus: RedisStreamsBus, envs: list[Envelope]) -> None:
    for e in envs:
        await bus.publish(RISK_ORDER, e)


async def report_bodies(bus: RedisStreamsBus) -> list[tuple[str, dict]]:
    return [(f["type"], json.loads(f["body"])) for _, f in await bus.entries(EXEC_REPORT, 100_000)]


async def wait_async(pred: Callable, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        v = await pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def wait_sync(pred: Callable, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (httpx.HTTPError, OSError) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last})")


def terminal_by_intent(reports: list[tuple[str, dict]]) -> Counter:
    return Counter(b["intent_id"] for t, b in reports if t in TERMINAL)


def venue_orders_by_link(sim: Sim) -> Counter:
    return Counter(o["orderLinkId"] for o in sim.get("/sim/orders")["list"] if o["orderLinkId"])


class ExecutorProcess:
    """``python -m tm_executor`` with TM_ settings; logs (stdout+stderr) to a file."""

    def __init__(self, sim: Sim, redis_url: str, namespace: str, log_path: Path, **env: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
        self.env.update({
            "TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_HTTP_PORT": str(self.port),
            "TM_CONSUMER_NAME": "executor-0", "TM_EXECUTOR_BYBIT_REST_URL": sim.url,
            "TM_EXECUTOR_BYBIT_PRIVATE_WS_URL": sim.ws_url + "/v5/private", "TM_EXECUTOR_BYBIT_API_KEY": KEY,
            "TM_EXECUTOR_BYBIT_API_SECRET": SECRET, "TM_READ_BLOCK_MS": "100",
            "TM_LAG_POLL_INTERVAL_S": "0.2", "TM_EXECUTOR_PREFLIGHT_RETRY_S": "0.2",
            "TM_EXECUTOR_VENUE_TIMEOUT_S": "2", "TM_EXECUTOR_RECONCILE_INTERVAL_S": "3600",
            "TM_EXECUTOR_FILL_POLL_INTERVAL_S": "1", "PYTHONUNBUFFERED": "1"})
        self.env.update(env)
        self.proc: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True) -> ExecutorProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tm_executor"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_sync(lambda: self.alive() and self.get("/healthz").status_code == 200, 20,
                  "executor /healthz")
        if wait_ready:
            wait_sync(lambda: self.get("/readyz").status_code == 200, 20, "executor /readyz")
        return self

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"executor exited ({self.proc and self.proc.returncode}):\n"
                                 + self.logs()[-3000:])
        return True

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5.0)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


@pytest.fixture
def executor_factory(tmp_path):
    started: list[ExecutorProcess] = []

    def make(sim: Sim, redis_url: str, namespace: str, *, start: bool = True,
             wait_ready: bool = True, **env: str) -> ExecutorProcess:
        p = ExecutorProcess(sim, redis_url, namespace, tmp_path / f"executor-{len(started)}.log",
                            **env)
        started.append(p)
        return p.start(wait_ready) if start else p

    yield make
    for p in started:
        p.stop()
