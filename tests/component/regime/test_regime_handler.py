"""The regime handler in the real consumer loop on the in-memory bus."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.streams import MD_BAR, MODELS_PROMOTED, REGIME_STATE
from tm_common.events import Envelope, ModelPromoted
from tm_common.history import load_bars
from tm_common.testing.factories import history_bar_event as bar_env
from tm_quant.garch import GarchFilter
from tm_quant.regime import regime_observation
from tm_regime.domain.engine import EQUAL, RegimeConfig, RegimeEngine
from tm_regime.handler import NO_MODEL, NotReady, RegimeHandler
from tm_regime.models import RegimeModels
from tm_regime.testing import FakeRegistry, fit_instrument, regime_bundle

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START = 5000


@pytest.fixture(scope="module")
def bundles():
    btc = fit_instrument("BTCUSDT", start=0, n_bars=1500, seed=7)
    eth = fit_instrument("ETHUSDT", start=1500, n_bars=1500, seed=3)
    return {"r1": regime_bundle("r1", {s: btc for s in SYMS}),
            "r2": regime_bundle("r2", {s: eth for s in SYMS}), "fits": {"BTCUSDT": btc}}


def registry(bundles, prod="r1"):
    r = FakeRegistry()
    for v in ("r1", "r2"):
        r.add(v, bundles[v], kind="regime", promote=(v == prod))
    return r


def promoted(version, kind="regime"):
    return Envelope.root(ModelPromoted(kind=kind, version=version), key=f"{kind}:{version}",
                         correlation_id=f"model:{version}", ts_event_ns=1, ts_init_ns=1)


async def publish(bus, start, n, seed=0):
    rng = random.Random(seed)
    per = {s: load_bars(s)[start:start + n] for s in SYMS}
    for i in range(n):
        group = list(SYMS)
        rng.shuffle(group)
        for s in group:
            await bus.publish(MD_BAR, bar_env(s, per[s][i]))


def make(bus, reg, name="regime-0"):
    h = RegimeHandler(RegimeEngine(RegimeConfig(symbols=SYMS, replay_bars=50)), RegimeModels(reg))
    c = Consumer(bus, h, group="regime", consumer=name, streams=[MD_BAR, MODELS_PROMOTED],
                 state_key="tm:state:regime", clock=lambda: 7, retry_backoff_s=0.001)
    return h, c


async def regimes(bus):
    return [{**f, "body": json.loads(f["body"])} for _, f in await bus.entries(REGIME_STATE, 100_000)]


async def test_service_forward_step_equals_hmmlearn(bundles):
    bus = InMemoryBus()
    _, c = make(bus, registry(bundles))
    await publish(bus, START, 300)
    await c.run_until_idle()
    out = [r["body"] for r in await regimes(bus) if r["body"]["instrument"] == "BTCUSDT"]
    assert len(out) == 300 and [o["bar_time_ms"] for o in out] == \
        [b.open_time_ms for b in load_bars("BTCUSDT")[START:START + 300]]
    hmm_model, garch = bundles["fits"]["BTCUSDT"]
    c_ = np.array([float(b.close) for b in load_bars("BTCUSDT")[START:START + 300]])
    r = np.diff(np.log(c_))
    sigma = GarchFilter(garch).run(r * 100) / 100
    X = regime_observation(r, sigma)
    hmm = GaussianHMM(n_components=4, covariance_type="full")
    hmm.n_features = 2
    hmm.startprob_, hmm.transmat_ = hmm_model.startprob, hmm_model.transmat
    hmm.means_, hmm.covars_ = hmm_model.means, hmm_model.covars
    for t in (1, 5, 77, 299):
        np.testing.assert_allclose(out[t]["probabilities"], hmm.predict_proba(X[:t])[-1],
                                   rtol=1e-8, atol=1e-12)
        assert out[t]["volatility"] == pytest.approx(sigma[t - 1], rel=1e-12)
        assert out[t]["model_version"] == "r1"


async def test_no_model_publishes_neutral_and_readyz_says_why():
    bus = InMemoryBus()
    h, c = make(bus, FakeRegistry())
    await h.prefetch()
    with pytest.raises(NotReady, match=NO_MODEL):
        h.ready()
    await publish(bus, START, 4)
    await c.run_until_idle()
    out = [r["body"] for r in await regimes(bus)]
    assert len(out) == 12
    assert {(o["label"], tuple(o["probabilities"]), o["kelly_fraction"], o["model_version"])
            for o in out} == {("Neutral", EQUAL, 0.5, "")}
    with pytest.raises(NotReady, match=NO_MODEL):
        h.ready()


async def test_hot_reload_mid_stream_each_bar_once(bundles):
    reg = registry(bundles)
    bus = InMemoryBus()
    h, c = make(bus, reg)
    await publish(bus, START, 30, seed=1)
    await c.run_until_idle()
    reg.promote("r2")
    await bus.publish(MODELS_PROMOTED, promoted("r2"))
    await bus.publish(MODELS_PROMOTED, promoted("v9", kind="signal"))      # not ours
    await c.run_until_idle()
    await publish(bus, START + 30, 30, seed=2)
    await c.run_until_idle()
    out = [r["body"] for r in await regimes(bus)]
    keys = [(o["instrument"], o["bar_time_ms"]) for o in out]
    assert len(keys) == len(set(keys)) == 180
    switch = load_bars("BTCUSDT")[START + 30].open_time_ms
    assert all(o["model_version"] == ("r2" if o["bar_time_ms"] >= switch else "r1") for o in out)
    assert h.status()["model_version"] == "r2"


class Crash(BaseException):
    pass


async def test_crash_and_restart_equal_the_uninterrupted_run(bundles):
    async def scenario(bus):
        await publish(bus, START, 40, seed=3)
        await bus.publish(MODELS_PROMOTED, promoted("r2"))
        await publish(bus, START + 40, 10, seed=4)
    ref = InMemoryBus()
    await scenario(ref)
    ref_reg = registry(bundles)
    ref_reg.promote_later("r2")        # the registry promotes r2 after the cold start
    await make(ref, ref_reg)[1].run_until_idle()
    expect = [(r["event_id"], r["body"]) for r in await regimes(ref)]
    assert {b["model_version"] for _, b in expect} == {"r1", "r2"}       # the swap happened

    bus = InMemoryBus()
    await scenario(bus)
    reg = registry(bundles)
    reg.promote_later("r2")
    real, n, crash_at = bus.commit, {"i": 0}, {13, 55, 121, 122}

    async def commit(*a, **kw):
        n["i"] += 1
        if n["i"] in crash_at:
            raise Crash()
        await real(*a, **kw)
    bus.commit = commit
    restarts = 0
    while True:
        try:
            await make(bus, reg)[1].run_until_idle()
            break
        except Crash:
            restarts += 1
    assert restarts == 4
    assert [(r["event_id"], r["body"]) for r in await regimes(bus)] == expect
