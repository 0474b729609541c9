"""Regime engine: one forward step per bar equals hmmlearn; state and reloads are exact."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM
from tm_common.history import load_bars
from tm_quant.garch import GarchFilter
from tm_quant.regime import STATE_LABELS, regime_observation
from tm_regime.domain.engine import EQUAL, RegimeConfig, RegimeEngine

START = 5000


def closes(sym: str, start: int, n: int) -> list[tuple[int, float]]:
    return [(b.open_time_ms, float(b.close)) for b in load_bars(sym)[start:start + n]]


def feed(engine, sym, bars):
    return [engine.on_bar(sym, t, c, t)[0] for t, c in bars]


def as_hmmlearn(m) -> GaussianHMM:
    h = GaussianHMM(n_components=4, covariance_type="full")
    h.n_features = m.n_features
    h.startprob_, h.transmat_, h.means_, h.covars_ = m.startprob, m.transmat, m.means, m.covars
    return h


def test_forward_step_equals_hmmlearn_predict_proba(model_r1):
    bars = closes("BTCUSDT", START, 700)              # out of the fitting sample
    e = RegimeEngine(RegimeConfig())
    e.set_model(model_r1)
    outs = feed(e, "BTCUSDT", bars)
    spec = model_r1.instruments["BTCUSDT"]
    c = np.array([x for _, x in bars])
    r = np.diff(np.log(c))
    sigma = GarchFilter(spec.garch).run(r * 100) / 100
    X = regime_observation(r, sigma)
    hmm = as_hmmlearn(spec.hmm)
    np.testing.assert_allclose(outs[0].probabilities, spec.hmm.startprob)   # first bar: prior
    for t in (1, 2, 10, 123, 400, 699):
        expect = hmm.predict_proba(X[:t])[-1]
        o = outs[t]
        np.testing.assert_allclose(o.probabilities, expect, rtol=1e-8, atol=1e-12)
        assert o.label == STATE_LABELS[int(np.argmax(expect))]
        assert o.volatility == pytest.approx(sigma[t - 1], rel=1e-12)
        assert o.kelly_fraction == spec.kelly.for_label(o.label)
        assert o.model_version == "r1"
    assert len({o.label for o in outs}) >= 2           # the regimes do move on real data


def test_without_model_neutral_with_equal_probabilities():
    e = RegimeEngine(RegimeConfig(no_model_kelly=0.5))
    outs = feed(e, "ETHUSDT", closes("ETHUSDT", START, 20))
    assert {(o.label, o.probabilities, o.kelly_fraction, o.model_version) for o in outs} == \
        {("Neutral", EQUAL, 0.5, "")}
    assert all(o.volatility > 0 for o in outs)


def test_snapshot_restore_continues_exactly(model_r1):
    bars = {s: closes(s, START, 300) for s in ("BTCUSDT", "SOLUSDT")}
    full = RegimeEngine(RegimeConfig())
    full.set_model(model_r1)
    expect = [feed(full, s, bars[s]) for s in bars]
    head = RegimeEngine(RegimeConfig())
    head.set_model(model_r1)
    got = [feed(head, s, bars[s][:150]) for s in bars]
    tail = RegimeEngine(RegimeConfig())
    tail.restore(json.loads(msgspec.json.encode(head.snapshot())))
    assert tail.needs_attach
    tail.attach(model_r1)
    for i, s in enumerate(bars):
        got[i] += feed(tail, s, bars[s][150:])
    assert got == expect


def test_reload_refilters_recent_closes_like_a_fresh_start(model_r1, model_r2):
    bars = closes("ETHUSDT", START, 450)
    a = RegimeEngine(RegimeConfig(replay_bars=100))
    a.set_model(model_r1)
    feed(a, "ETHUSDT", bars[:400])
    a.set_model(model_r2)                              # hot reload between two bars
    after = feed(a, "ETHUSDT", bars[400:])
    b = RegimeEngine(RegimeConfig(replay_bars=100))
    b.set_model(model_r2)
    fresh = feed(b, "ETHUSDT", bars[300:])[100:]       # same last 100 closes, then the same bars
    assert after == fresh
    assert {o.model_version for o in after} == {"r2"}
    assert {o.kelly_fraction for o in after} <= {0.6, 0.4, 0.2, 0.1}


def test_duplicates_and_unknown_instruments_are_dropped(model_r1):
    e = RegimeEngine(RegimeConfig(symbols=("BTCUSDT",)))
    e.set_model(model_r1)
    (t, c), = closes("BTCUSDT", START, 1)
    assert e.on_bar("BTCUSDT", t, c, 0)[0] is not None
    assert e.on_bar("BTCUSDT", t, c, 0) == (None, "duplicate or late bar")
    assert e.on_bar("ETHUSDT", t, c, 0)[1] == "instrument ETHUSDT not configured"
    with pytest.raises(ValueError):
        e.on_bar("BTCUSDT", t + 1, 0.0, 0)
