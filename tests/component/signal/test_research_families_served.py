"""Issue 16 part 4: the research families (``random_forest``: scikit-learn exported to the numpy
tree walker; ``trend``: volatility-targeted time-series momentum) each train on a small window
with the real trainer, are gated like every family, and are served by the signal handler in the
real consumer loop on a lockstep replay of the bars after their cut-off with the trainer's own
P(up) for the same bars (|dP| <= 1e-12, no direction flip)."""

from __future__ import annotations

import numpy as np
import pytest
from tm_trainer.registry_ops import record

from .conftest import SYMS, serve_lockstep, served_vs_trained, train_window

START, N = 5000, 60


@pytest.fixture(scope="module", params=["random_forest", "trend"])
def trained(request):
    return (request.param, *train_window(request.param, START, N, n_windows=2))


async def test_a_research_family_is_gated_and_served_as_trained(trained, registry):
    name, result, expected = trained
    assert result.family == name and result.report["family"] == name
    summary = result.report["summary"]                  # gated on the same numbers as any family
    assert result.gate_passed == (not result.reasons)
    classic = (summary["mean_ic"] is not None and summary["mean_ic"] >= 0.03
               and summary["sharpe"] is not None and summary["sharpe"] > 0.5)
    honest = [r for r in result.reasons if r.startswith(("deflated Sharpe", "timing t",
                                                          "positive in"))]
    assert result.gate_passed == (classic and not honest)   # and the honest gates (issue 16)
    out = await record(registry, result, promote=True, min_days=0)   # the gates alone
    if not result.gate_passed:
        assert any("refused" in k for k in out.kept)
        await registry.promote(result.signal_version, "test: served-equals-trained",
                               evidence={"forced": True})
    served = await serve_lockstep(registry, START, N)
    assert len(served) == len(SYMS) * N
    assert {b["model_version"] for b in served} == {result.signal_version}
    for s, (dp, flips) in served_vs_trained(served, expected).items():
        assert dp <= 1e-12 and flips == 0, (name, s, dp, flips)
        # a model whose OOS slope is <= 0 is calibrated flat to the base rate (issue 16): then
        # every served p is that rate, and the comparison above is still exact
        if result.report["honest"]["calibration"]["flat"]:
            assert np.ptp(list(expected[s].values())) == 0.0, (name, s)
        else:
            assert np.ptp(list(expected[s].values())) > 1e-3, (name, s)
