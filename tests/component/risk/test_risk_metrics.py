"""Risk metrics as the handler reports them; the exposition passes promtool."""

from __future__ import annotations

from tm_common.metrics import ServiceMetrics
from tm_common.testing.promtool import assert_promtool_clean
from tm_risk.handler import RiskHandler
from tm_risk.metrics import RiskMetrics
from tm_risk.testing import N_BARS, command_env, target_env, warm_handler


def test_metrics_follow_decisions_and_pass_promtool():
    m = ServiceMetrics("risk", "0.1.0")
    warm, _ = warm_handler()
    h = RiskHandler(warm.params, observer=RiskMetrics(m.registry))
    h.restore(warm.snapshot())
    h.process(target_env("BTCUSDT", N_BARS - 1, 0.3))
    h.process(command_env("trip"))
    h.process(target_env("ETHUSDT", N_BARS - 1, 0.3))
    text = m.exposition().decode()
    assert "tm_risk_breaker_state 2.0" in text
    assert 'tm_risk_orders_approved_total{instrument="BTCUSDT",kind="open"} 1.0' in text
    assert 'tm_risk_orders_rejected_total{reason="breaker_open"} 1.0' in text
    assert 'tm_risk_decision_duration_seconds_count{outcome="approved"} 1.0' in text
    assert 'tm_risk_breaker_transitions_total{from_state="CLOSED",to_state="OPEN",trigger="manual_trip"} 1.0' in text
    var = [ln for ln in text.splitlines() if ln.startswith('tm_risk_var_ratio{method="parametric"}')]
    assert var and 0 < float(var[0].split()[-1]) < 0.05
    assert_promtool_clean(text)
