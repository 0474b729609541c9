"""The model age that the TMModelStale alert reads: the registry's registration time of the model
in use, 0 without a model (signal and regime alike)."""

import pytest
from prometheus_client import generate_latest
from tm_regime.metrics import RegimeMetrics
from tm_signal.metrics import SignalMetrics


@pytest.mark.parametrize("cls, name", [(SignalMetrics, "tm_signal_model_created_timestamp_seconds"),
                                       (RegimeMetrics, "tm_regime_model_created_timestamp_seconds")])
def test_model_created_timestamp(cls, name):
    m = cls()
    assert f"{name} 0.0" in generate_latest(m.registry).decode()
    m.set_model("v1", 1_735_689_600_000)
    assert f"{name} 1.7356896e+09" in generate_latest(m.registry).decode()
    m.set_model("", None)
    assert f"{name} 0.0" in generate_latest(m.registry).decode()
