"""The regime service as a real process on real Redis: Neutral without a model (and /readyz says
why), then a promotion mid-stream switches every later bar to the model, each bar once."""

from __future__ import annotations

import asyncio
import json
import signal
import time

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, MODELS_PROMOTED, REGIME_STATE
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.events import Envelope
from tm_common.history import load_bars
from tm_common.models.registry import ModelRegistry
from tm_common.testing.factories import history_bar_event as bar_env
from tm_common.testing.processes import ServiceProcess
from tm_regime.testing import fit_instrument, regime_bundle

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START, N, PROMOTE_AT = 5000, 20, 8


async def test_regime_process_neutral_then_hot_reload(tmp_path, redis_url, namespace):
    db_url = f"sqlite+aiosqlite:///{tmp_path}/tm.db"
    await migrate_async(db_url)
    engine = make_engine(db_url)
    reg = ModelRegistry(engine)
    fit = fit_instrument("BTCUSDT", start=0, n_bars=1500, seed=7)
    await reg.register("regime", "r1", regime_bundle("r1", {s: fit for s in SYMS}),
                       data_hash="t", features=[], params={}, seed=0, metrics={})
    proc = ServiceProcess("tm_regime", {
        "TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_DATABASE_URL": db_url,
        "TM_CONSUMER_NAME": "regime-0", "TM_DATA_DIR": str(tmp_path), "TM_READ_BLOCK_MS": "100"},
        tmp_path / "regime.log", http_timeout_s=2).start()
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    try:
        r = proc.wait_for(lambda: (x := proc.get("/readyz")).status_code == 503
                          and "registry" not in x.text and x, 40, "/readyz 503 without a model")
        assert "no production regime model" in r.json()["checks"]["model"]
        per = {s: load_bars(s)[START:START + N] for s in SYMS}
        for i in range(N):
            if i == PROMOTE_AT:
                body = await reg.promote("r1", "test")
                await bus.publish(MODELS_PROMOTED, Envelope.root(
                    body, key="regime:r1", correlation_id="model:r1", ts_event_ns=1, ts_init_ns=1))
                proc.wait_for(lambda: proc.status()["extra"]["model_version"] == "r1", 30,
                              "model r1 in /status")
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
        assert proc.get("/readyz").status_code == 200
        metrics = proc.get("/metrics").text
        assert 'tm_regime_model_info{version="r1"} 1.0' in metrics
        assert "tm_regime_label{" in metrics
        proc.signal(signal.SIGTERM)
        assert proc.wait_exit(25) == 0
    finally:
        proc.stop(signal.SIGKILL)
        await bus.close()
        await engine.dispose()
