"""Stale side inputs (``tm_signal.domain.staleness``): a DVOL or funding value older than its
maximum age is withheld from the model (its features NaN, as the trainer presents a missing
input) and cuts the confidence; fresh again, the prediction is the trainer's at once."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pandas as pd
import pytest
from tm_common.history import load_dvol, load_funding
from tm_quant.features import BAR_MS, FEATURE_NAMES, WARMUP_BARS, compute_batch
from tm_signal.domain.engine import EngineConfig, SignalEngine
from tm_signal.domain.model import DVOL_FEATURES
from tm_signal.domain.staleness import DAY_MS, InputAge, confidence_cut, withhold
from tm_signal.testing import signal_bundle

from .conftest import START, history, model_from
from .test_engine import frame, lockstep, run

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
N = 330
GAP = (240, 290)          # no DVOL becomes known between these bars' closes


def close_of(i: int) -> int:
    return history("BTCUSDT", START + i, 1)[0].close_ms


def gapped_dvol():
    lo, hi = close_of(GAP[0]), close_of(GAP[1])
    return [p for p in load_dvol("BTC") if not lo < p.known_at_ms <= hi]


def feed(engine: SignalEngine, dvol, funding: bool = True) -> None:
    for p in dvol:
        engine.on_dvol(p.known_at_ms, float(p.close))
    for s in SYMS if funding else ():
        for f in load_funding(s):
            engine.on_funding(s, f.time_ms, float(f.rate))


def test_stale_dvol_is_withheld_and_cuts_confidence_then_fresh_equals_batch(model_v1):
    e = SignalEngine(EngineConfig(symbols=SYMS))
    e.set_model(model_v1)
    dv = gapped_dvol()
    feed(e, dv)
    outs = run(e, lockstep())
    dvf = pd.DataFrame({"timestamp": [p.day_ms for p in dv], "dvol_close": [float(p.close) for p in dv]})
    known = np.array([p.known_at_ms for p in dv])
    btc = frame([b.as_bar() for b in history("BTCUSDT", START - 8, N + 8)])
    for s in SYMS:
        im = model_v1.instruments[s]
        fr = load_funding(s)
        fund = pd.DataFrame({"timestamp": [f.time_ms for f in fr],
                             "funding_rate": [float(f.rate) for f in fr]})
        raw = [b.as_bar() for b in history(s, START, N)]
        X, _ = compute_batch(frame(raw), dvol=dvf, funding=fund,
                             btc_bars=None if s == "BTCUSDT" else btc, garch_params=im.garch)
        live = {o.bar_time_ms: o for o in outs if o.instrument == s}
        n_stale = n_after = 0
        for i, b in enumerate(raw):
            if i < WARMUP_BARS - 1:
                continue
            o, close = live[b.ts_ms], b.ts_ms + BAR_MS
            age = close - known[known <= close].max()
            stale = age > 2 * DAY_MS
            row = X[i].copy()
            if stale:
                n_stale += 1
                row[[j for j, n in enumerate(FEATURE_NAMES) if n in DVOL_FEATURES]] = np.nan
                assert "stale dvol (age" in o.reason and "funding" not in o.reason, o.reason
            else:
                assert o.reason == "ok", o.reason
                n_after += i > GAP[1]
            assert o.probability == pytest.approx(im.predict(row), abs=1e-6)
            want = abs(2 * o.probability - 1) * (0.5 if stale else 1.0)
            assert o.confidence == pytest.approx(want, abs=1e-12)
            assert [(a.name, a.stale) for a in o.inputs] == [("dvol", stale), ("funding", False)]
        assert n_stale > 20 and n_after > 20, (s, n_stale, n_after)


def test_fraction_zero_forces_a_stale_signal_flat(model_v1):
    e = SignalEngine(EngineConfig(symbols=SYMS, stale_confidence_fraction=0.0))
    e.set_model(model_v1)
    feed(e, gapped_dvol())
    outs = [o for o in run(e, lockstep()) if "stale dvol" in o.reason]
    assert outs and all(o.direction == 0 and o.confidence == 0.0 for o in outs)
    assert any(o.probability != 0.5 for o in outs)       # the prediction is still reported


def test_missing_funding_is_stale_for_a_model_that_reads_it_only(first_ms):
    uses = model_from(signal_bundle("f", first_bar_ms=first_ms, seed=4))
    plain = model_from(signal_bundle("p", first_bar_ms=first_ms, seed=4,
                                     features=("ret_1", "ret_6", "rv_42", "rsi_14")))
    for model, want in ((uses, True), (plain, False)):
        e = SignalEngine(EngineConfig(symbols=SYMS))
        e.set_model(model)
        feed(e, load_dvol("BTC"), funding=False)
        outs = [o for o in run(e, lockstep(230)) if o.reason.startswith("ok")]
        assert outs
        for o in outs:
            assert ("stale funding (none known)" in o.reason) is want, o.reason
            assert [a.name for a in o.inputs] == (["dvol", "funding"] if want else [])
        assert bool(e.stale_inputs()) is want
        if want:
            assert e.stale_inputs()[0] == "BTCUSDT: stale funding (none known)"


def test_the_stale_state_is_in_the_snapshot(model_v1):
    e = SignalEngine(EngineConfig(symbols=SYMS))
    e.set_model(model_v1)
    feed(e, gapped_dvol())
    run(e, lockstep(GAP[0] + 30))
    assert e.stale_inputs()
    state = json.loads(msgspec.json.encode(e.snapshot()))
    r = SignalEngine(EngineConfig(symbols=SYMS))
    r.restore(state)
    assert r.stale_inputs() == e.stale_inputs()
    r.attach(model_v1)
    r.set_model(model_v1)                 # a new model: its inputs are judged on its next bar
    assert r.stale_inputs() == []


def test_rule_pieces():
    fresh, old, none = InputAge("dvol", DAY_MS, 2 * DAY_MS), InputAge("dvol", 3 * DAY_MS, 2 * DAY_MS), \
        InputAge("funding", None, DAY_MS)
    assert not fresh.stale and old.stale and none.stale
    assert old.describe() == "stale dvol (age 3.0 d > 2.0 d)"
    assert confidence_cut(0.8, (fresh, old, none), 0.5) == pytest.approx(0.2)
    row = np.arange(49, dtype=float)
    assert withhold(row, (fresh,)) is row
    out = withhold(row, (old,))
    assert np.isnan(out).sum() == 3 and not np.isnan(row).any()
