"""The engine's live path equals the trainer's batch path; its state round-trips exactly."""

from __future__ import annotations

import json
import random

import msgspec
import numpy as np
import pandas as pd
import pytest
from tm_common.history import load_bars, load_dvol
from tm_quant.features import WARMUP_BARS, IncrementalFeatures, compute_batch
from tm_quant.garch import DEFAULT_GARCH_PARAMS
from tm_signal.domain import feature_codec
from tm_signal.domain.engine import NO_MODEL, EngineConfig, SignalEngine

from .conftest import START, history

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
N = 330


def lockstep(n: int = N, start: int = START, seed: int = 0):
    """Bars of every symbol, time by time, shuffled within each bar time."""
    rng = random.Random(seed)
    per = {s: history(s, start, n) for s in SYMS}
    out = []
    for i in range(n):
        group = [per[s][i] for s in SYMS]
        rng.shuffle(group)
        out.extend(group)
    return out


def dvol_points():
    return [(p.known_at_ms, float(p.close)) for p in load_dvol("BTC")]


def run(engine, bars):
    outs = []
    for b in bars:
        o, _ = engine.on_bar(b)
        outs.extend(o)
    return outs


def key(outs):
    """Comparable content of signals (timings excluded: they are measurements)."""
    return sorted((o.instrument, o.bar_time_ms, o.direction, o.probability, o.confidence,
                   o.live_ic, o.model_version, o.reason) for o in outs)


def frame(bars):
    return pd.DataFrame({"timestamp": [b.ts_ms for b in bars], "open": [b.open for b in bars],
                         "high": [b.high for b in bars], "low": [b.low for b in bars],
                         "close": [b.close for b in bars], "volume": [b.volume for b in bars]})


def test_live_predictions_equal_batch_features_through_the_booster(model_v1):
    e = SignalEngine(EngineConfig(symbols=SYMS))
    e.set_model(model_v1)
    for k, v in dvol_points():          # every DVOL point up front: only known ones may be used
        e.on_dvol(k, v)
    outs = run(e, lockstep())
    dv = pd.DataFrame({"timestamp": [p.day_ms for p in load_dvol("BTC")],
                       "dvol_close": [float(p.close) for p in load_dvol("BTC")]})
    raw = {s: [b.as_bar() for b in history(s, START, N)] for s in SYMS}
    btc = frame([b.as_bar() for b in history("BTCUSDT", START - 8, N + 8)])
    compared = 0
    for s in SYMS:
        im = model_v1.instruments[s]
        X, _ = compute_batch(frame(raw[s]), dvol=dv, btc_bars=None if s == "BTCUSDT" else btc,
                             garch_params=im.garch)
        live = {o.bar_time_ms: o for o in outs if o.instrument == s}
        assert len(live) == N
        for i, b in enumerate(raw[s]):
            o = live[b.ts_ms]
            if i < WARMUP_BARS - 1:
                assert o.confidence == 0.0 and o.reason.startswith("warming up")
                continue
            assert o.reason.startswith("ok") and o.model_version == "v1"
            assert o.probability == pytest.approx(im.predict(X[i]), abs=1e-6)
            compared += 1
    assert compared == 3 * (N - WARMUP_BARS + 1)
    # pruned as bars went by: of the points already known, only the newest is kept
    last_close = max(b.ts_ms for b in raw["BTCUSDT"]) + 4 * 3_600_000
    assert sum(1 for k, _ in e.dvol.to_list() if k <= last_close) == 1


def test_without_model_every_bar_gets_a_zero_confidence_signal():
    e = SignalEngine(EngineConfig(symbols=SYMS))
    outs = run(e, lockstep(5))
    assert len(outs) == 15
    assert {(o.direction, o.probability, o.confidence, o.model_version, o.reason)
            for o in outs} == {(0, 0.5, 0.0, "", NO_MODEL)}


def test_instrument_missing_from_model_says_so(model_v1):
    e = SignalEngine(EngineConfig(symbols=(*SYMS, "XRPUSDT"), btc_symbol=None))
    e.set_model(model_v1)
    b = history("ETHUSDT", START, 1)[0]
    xrp = type(b)("XRPUSDT", *[getattr(b, f) for f in ("open_time_ms", "open", "high", "low",
                                                      "close", "volume", "ts_event_ns")])
    (o,), _ = e.on_bar(xrp)
    assert o.reason == "model v1 has no XRPUSDT" and o.confidence == 0.0


def test_snapshot_restore_continues_bit_identically(model_v1):
    bars = lockstep(260, seed=3)
    full = SignalEngine(EngineConfig(symbols=SYMS, ic_min_pairs=5))
    full.set_model(model_v1)
    expect = key(run(full, bars))
    head = SignalEngine(EngineConfig(symbols=SYMS, ic_min_pairs=5))
    head.set_model(model_v1)
    got = run(head, bars[:500])                    # mid-stream, possibly with a buffered bar
    state = json.loads(msgspec.json.encode(head.snapshot()))   # strict JSON, as saved
    tail = SignalEngine(EngineConfig(symbols=SYMS, ic_min_pairs=5))
    tail.restore(state)
    assert tail.needs_attach
    tail.attach(model_v1)
    got += run(tail, bars[500:])
    assert key(got) == expect
    assert any(o.live_ic is not None for o in got)


def test_warm_from_history_equals_having_seen_the_bars_live(model_v1):
    bars = lockstep(300, seed=5)
    live = SignalEngine(EngineConfig(symbols=SYMS))
    live.set_model(model_v1)
    run(live, bars[:3 * 250])
    warmed = SignalEngine(EngineConfig(symbols=SYMS))
    warmed.set_model(model_v1)
    for s in SYMS:
        hist = [b.as_bar() for b in history(s, START, 250)]
        btc = [b.as_bar() for b in history("BTCUSDT", START - 8, 258)]
        assert warmed.warm(s, hist, btc, []) == 250
    # warmed engine has features but no other state: compare features through predictions
    tail = bars[3 * 250:]
    a = {(o.instrument, o.bar_time_ms): o.probability for o in run(live, tail)}
    b = {(o.instrument, o.bar_time_ms): o.probability for o in run(warmed, tail)}
    assert a == b and len(a) == 150


def test_feature_codec_round_trip_is_exact():
    bars = load_bars("ETHUSDT")[START:START + 260]
    f = IncrementalFeatures(DEFAULT_GARCH_PARAMS)
    for b in bars[:230]:
        f.update((b.open_time_ms, b.open, b.high, b.low, b.close, b.volume), dvol=55.0)
    g = feature_codec.decode(json.loads(json.dumps(feature_codec.encode(f, DEFAULT_GARCH_PARAMS))))
    for b in bars[230:]:
        x = (b.open_time_ms, b.open, b.high, b.low, b.close, b.volume)
        np.testing.assert_array_equal(f.update(x), g.update(x))


def test_feature_codec_refuses_foreign_state():
    f = IncrementalFeatures()
    enc = feature_codec.encode(f, DEFAULT_GARCH_PARAMS)
    enc["attrs"]["_new_window"] = 1
    with pytest.raises(ValueError, match="_new_window"):
        feature_codec.decode(enc)
    f._odd = object()
    with pytest.raises(TypeError, match="_odd"):
        feature_codec.encode(f, DEFAULT_GARCH_PARAMS)


def test_funding_of_a_shorter_interval_is_kept_per_8h_live_and_warmed_alike(model_v1):
    """Hourly rates (an instrument Bybit settles every hour): the engine keeps each per 8 h
    (x 8: the gap since the settlement before), the first as it is, whether it saw them live or
    warmed from history; the next live rate after a warm-up is scaled from the warmed one."""
    h = 3_600_000
    pts = [(START + h * k, 0.0001) for k in range(1, 10)]
    live = SignalEngine(EngineConfig(symbols=SYMS))
    for t, r in pts[:8]:
        live.on_funding("ETHUSDT", t, r)
    kept = live.funding["ETHUSDT"]
    assert kept.point(pts[0][0]) == (pts[0][0], 0.0001)                # no settlement before
    assert kept.point(pts[7][0]) == (pts[7][0], pytest.approx(0.0008))
    warmed = SignalEngine(EngineConfig(symbols=SYMS))
    warmed.set_model(model_v1)
    hist = [b.as_bar() for b in history("ETHUSDT", START, 10)]
    btc = [b.as_bar() for b in history("BTCUSDT", START - 8, 18)]
    assert warmed.warm("ETHUSDT", hist, btc, [], funding=pts[:8]) == 10
    assert warmed.funding["ETHUSDT"].point(pts[7][0]) == kept.point(pts[7][0])
    for e in (live, warmed):
        e.on_funding("ETHUSDT", *pts[8])
        assert e.funding["ETHUSDT"].point(pts[8][0]) == (pts[8][0], pytest.approx(0.0008))
