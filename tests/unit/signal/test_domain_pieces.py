"""Small pure pieces: decision rule, calibration, as-of store, live IC, model loading."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tm_common.models.bundle import Bundle
from tm_common.models.bundle import calibrate as bundle_calibrate
from tm_quant.labels import spearman_ic
from tm_signal.domain.asof import KnownValues
from tm_signal.domain.engine import decide
from tm_signal.domain.live_ic import LiveIC, spearman
from tm_signal.domain.model import ModelLoadError, SignalModel, calibrate
from tm_signal.testing import signal_bundle


@given(st.floats(0.0, 1.0))
def test_decide_bounds_and_sign(p):
    d, c = decide(p)
    assert 0.0 <= c <= 1.0 and c == pytest.approx(abs(2 * p - 1))
    assert d == (0 if p == 0.5 else (1 if p > 0.5 else -1))


def test_decide_min_confidence_keeps_confidence():
    assert decide(0.55, 0.2) == (0, pytest.approx(0.1))
    assert decide(0.2, 0.2) == (-1, pytest.approx(0.6))


@given(st.floats(-20, 20), st.floats(-5, 5), st.floats(-5, 5))
def test_calibration_matches_bundle_module(raw, a, b):
    assert calibrate(raw, a, b) == bundle_calibrate(raw, {"a": a, "b": b})


def test_known_values_asof_is_inclusive_and_pruned():
    kv = KnownValues()
    for k, v in [(300, 3.0), (100, 1.0), (200, 2.0)]:          # any arrival order
        kv.add(k, v)
    assert kv.asof(99) is None
    assert kv.asof(100) == 1.0 and kv.asof(299) == 2.0 and kv.asof(300) == 3.0
    kv.add(200, 2.5)                                           # same known-at: replaced
    assert kv.asof(250) == 2.5 and len(kv) == 3
    kv.prune(250)                                              # 100 superseded by 200
    assert kv.to_list() == [[200, 2.5], [300, 3.0]]
    assert KnownValues.from_list(kv.to_list()).asof(10_000) == 3.0


def test_live_ic_matures_after_horizon_bars():
    ic = LiveIC(window=5, min_pairs=3)
    closes = [100.0, 101.0, 99.0, 102.0, 103.0, 98.0, 97.0, 104.0]
    preds = [0.9, 0.1, 0.8, 0.7, 0.2, 0.3, 0.6, 0.5]
    for i, (c, p) in enumerate(zip(closes, preds)):
        ic.on_bar(c)
        assert len(ic.pairs) == min(5, max(0, i - 1))         # horizon 2: bar i matures at i+2
        ic.add(p, c, horizon_bars=2)
    pairs = list(ic.pairs)
    expect = [(preds[i], math.log(closes[i + 2] / closes[i])) for i in range(1, 6)]  # window 5
    np.testing.assert_allclose(pairs, expect)
    assert ic.value == pytest.approx(spearman_ic(*np.array(expect).T))
    back = LiveIC.from_dict(ic.to_dict(), window=5, min_pairs=3)
    assert back.to_dict() == ic.to_dict() and back.value == ic.value


def test_live_ic_none_before_min_pairs():
    ic = LiveIC(window=60, min_pairs=20)
    for i in range(20):
        ic.on_bar(100.0 + i)
        ic.add(0.5 + i / 100, 100.0 + i, 1)
    assert ic.value is None                                   # 19 matured
    ic.on_bar(130.0)
    assert ic.value is not None


def test_model_maps_features_by_name_and_predicts(model_v1):
    im = model_v1.instruments["ETHUSDT"]
    row = np.full(49, np.nan)
    row[im.columns] = 0.01
    p = im.predict(row)
    assert 0.0 < p < 1.0
    x = row[im.columns].reshape(1, -1)
    assert p == pytest.approx(float(im.booster.inplace_predict(x)[0]))


def _bundle_with(mutate):
    b = Bundle.from_bytes(signal_bundle("vx", first_bar_ms=0))
    m = dict(b.manifest)
    m["instruments"] = {k: dict(v) for k, v in m["instruments"].items()}
    mutate(m)
    return m, b.files


def test_model_refuses_features_it_does_not_compute():
    def mutate(m):
        m["feature_names"] = [*m["feature_names"], "moon_phase"]
        m["instruments"]["BTCUSDT"]["features"] = ["moon_phase", *m["instruments"]["BTCUSDT"]["features"][1:]]
    with pytest.raises(ModelLoadError, match="moon_phase"):
        SignalModel.from_manifest(*_bundle_with(mutate))


def test_model_refuses_column_count_mismatch():
    def mutate(m):
        m["instruments"]["SOLUSDT"]["features"] = m["instruments"]["SOLUSDT"]["features"][:-1]
    with pytest.raises(ModelLoadError, match="columns"):
        SignalModel.from_manifest(*_bundle_with(mutate))


def test_model_refuses_other_kinds():
    with pytest.raises(ModelLoadError, match="kind"):
        SignalModel.from_manifest({"kind": "regime"}, {})


@given(st.lists(st.tuples(st.sampled_from([0.1, 0.2, 0.5, 0.7, float("nan")]) | st.floats(0, 1),
                          st.sampled_from([-0.01, 0.0, 0.02]) | st.floats(-0.1, 0.1)),
                min_size=0, max_size=70))
def test_fast_spearman_equals_the_trainer_definition(pairs):
    a = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    mine, ref = spearman(a[:, 0], a[:, 1]), spearman_ic(a[:, 0], a[:, 1])
    assert (math.isnan(mine) and math.isnan(ref)) or mine == pytest.approx(ref, abs=1e-12)
