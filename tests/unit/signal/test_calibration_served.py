"""The signal service applies the bundle's Platt calibration (fitted by the trainer on the
walk-forward's OOS predictions) with numpy/math only: the served P(up) is the calibrated raw
output, and its confidence moves with the calibration."""

from __future__ import annotations

import numpy as np
import pytest
from tm_common.models.bundle import Bundle
from tm_quant.calibration import apply_platt, confidence
from tm_quant.features import FEATURE_NAMES
from tm_signal.domain.model import SignalModel
from tm_signal.testing import signal_bundle


def _model(cal):
    b = Bundle.from_bytes(signal_bundle("s-cal", first_bar_ms=0, calibration=cal))
    return SignalModel.from_manifest(b.manifest, b.files)


def test_served_probability_is_the_calibrated_raw_output():
    ident, cal = _model((1.0, 0.0)), _model((4.0, -2.0))
    rng = np.random.default_rng(0)
    for _ in range(20):
        row = rng.normal(size=len(FEATURE_NAMES))
        for sym, im in cal.instruments.items():
            raw = ident.instruments[sym].predict(row)
            assert im.predict(row) == pytest.approx(float(apply_platt(np.array([raw]), 4.0, -2.0)[0]),
                                                    abs=1e-12)


def test_a_flat_calibration_serves_the_base_rate_whatever_the_row():
    m = _model((0.0, 0.2))
    rng = np.random.default_rng(1)
    ps = {im.predict(rng.normal(size=len(FEATURE_NAMES))) for im in m.instruments.values()
          for _ in range(5)}
    assert len({round(p, 12) for p in ps}) == 1
    assert float(confidence(np.array(list(ps)))[0]) == pytest.approx(abs(2 / (1 + np.exp(-0.2)) - 1))
