"""The regime service as a real process on real Redis: Neutral without a model (and /readyz says
why), then a promotion mid-stream switches every later bar to the model, each bar once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import httpx
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, MODELS_PROMOTED, REGIME_STATE
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.events import BarClosed, Envelope
from tm_common.history import load_bars
from tm_common.models.registry import ModelRegistry
from tm_common.testing.redis import free_port
from tm_regime.testing import fit_instrument, regime_bundle

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START, N, PROMOTE_AT = 5000, 20, 8


def bar_env(sym, hb):
    b = BarClosed(instrument=sym, open_time_ms=hb.open_time_ms,
                  close_time_ms=hb.open_time_ms + 4 * 3_600_000 - 1, open=Decimal(hb.open),
                  high=Decimal(hb.high), low=Decimal(hb.low), close=Decimal(hb.close),
                  volume=Decimal(hb.volume), source="replay")
    key = f"{sym}:{hb.open_time_ms}"
    return Envelope.root(b, key=key, correlation_id=key,
                         ts_event_ns=(hb.open_time_ms + 4 * 3_600_000) * 1_000_000, ts_init_ns=1)


def start(env: dict, log) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "tm_regime"], env=env, stdout=fh,
                                stderr=subprocess.STDOUT)


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=2)


def wait_http(proc, url, pred, timeout_s, log):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            r = httpx.get(url, timeout=2)
            if pred(r):
                return r
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out on {url}:\n{log.read_text()[-3000:]}")


async def test_regime_process_neutral_then_hot_reload(tmp_path, redis_url, namespace):
    db_url = f"sqlite+aiosqlite:///{tmp_path}/tm.db"
    await migrate_async(db_url)
    engine = make_engine(db_url)
    reg = ModelRegistry(engine)
    fit = fit_instrument("BTCUSDT", start=0, n_bars=1500, seed=7)
    await reg.register("regime", "r1", regime_bundle("r1", {s: fit for s in SYMS}),
                       data_hash="t", features=[], params={}, seed=0, metrics={})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update({"TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_DATABASE_URL": db_url,
                "TM_HTTP_PORT": str(port), "TM_CONSUMER_NAME": "regime-0",
                "TM_DATA_DIR": str(tmp_path), "TM_READ_BLOCK_MS": "100"})
    log = tmp_path / "regime.log"
    proc = start(env, log)
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    base = f"http://127.0.0.1:{port}"
    try:
        r = wait_http(proc, base + "/readyz", lambda r: "registry" not in r.text
                      and r.status_code == 503, 40, log)
        assert "no production regime model" in r.json()["checks"]["model"]
        per = {s: load_bars(s)[START:START + N] for s in SYMS}
        for i in range(N):
            if i == PROMOTE_AT:
                body = await reg.promote("r1", "test")
                await bus.publish(MODELS_PROMOTED, Envelope.root(
                    body, key="regime:r1", correlation_id="model:r1", ts_event_ns=1, ts_init_ns=1))
                wait_http(proc, base + "/status",
                          lambda r: r.json()["extra"]["model_version"] == "r1", 30, log)
            for s in SYMS:
                await bus.publish(MD_BAR, bar_env(s, per[s][i]))
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 30
        while await bus.length(REGIME_STATE) < 3 * N and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        out = [json.loads(f["body"]) for _, f in await bus.entries(REGIME_STATE)]
        keys = {(o["instrument"], o["bar_time_ms"]) for o in out}
        assert len(out) == len(keys) == 3 * N
        switch = per["BTCUSDT"][PROMOTE_AT].open_time_ms
        for o in out:
            if o["bar_time_ms"] < switch:
                assert (o["label"], o["probabilities"], o["model_version"]) == \
                    ("Neutral", [0.25] * 4, "")
            else:
                assert o["model_version"] == "r1" and abs(sum(o["probabilities"]) - 1) < 1e-9
        assert get(base + "/readyz").status_code == 200
        metrics = get(base + "/metrics").text
        assert 'tm_regime_model_info{version="r1"} 1.0' in metrics
        assert "tm_regime_label{" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=25) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        await bus.close()
        await engine.dispose()
