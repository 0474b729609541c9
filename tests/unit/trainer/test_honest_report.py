"""What ``tm train`` and ``tm models`` say about the honest gates: unreachable tiers named, a
flat calibration called so, and a Boruta that confirmed nothing said in words."""

from __future__ import annotations

from tm_trainer.models_cli import boruta_cell
from tm_trainer.report import honest_lines, markdown


def _report(confirmed, unreachable, flat=False):
    reach = {k: {"threshold": t, "bars": 0 if k in unreachable else 5, "share": 0.0 if k in
                 unreachable else 0.01, "reachable": k not in unreachable}
             for k, t in (("PURE_KELLY", 0.3), ("BLENDED", 0.4), ("FULL_RL", 0.5))}
    return {
        "summary": {"n_windows": 2, "n_oos_bars": 84, "instruments": {}},
        "deflated_sharpe": {"dsr": 0.4, "n_trials": 3, "sr0_bar": 0.01},
        "honest": {"timing": {"return": -0.01, "t_stat": -0.5, "exposure": 0.2},
                   "consistency": {"periods": 4, "returns": [0.1, -0.1, 0.0, 0.2],
                                   "positive_share": 0.5},
                   "calibration": {"a": 0.0 if flat else 2.0, "b": 0.1, "n": 84, "flat": flat},
                   "reliability": [{"lo": 0.5, "hi": 0.6, "n": 84, "mean_p": 0.52,
                                    "observed": 0.55}],
                   "threshold_reach": reach, "unreachable_tiers": unreachable},
        "boruta": {"ETHUSDT": {"confirmed": confirmed, "filled_by_ranking": ["rsi_14", "ret_1"],
                               "none_confirmed": not confirmed}},
    }


def test_unreachable_tiers_flat_calibration_and_empty_boruta_are_said():
    text = "\n".join(honest_lines(_report([], ["BLENDED", "FULL_RL"], flat=True)))
    assert "UNREACHABLE for this model out of sample: BLENDED (confidence >= 0.40), FULL_RL" in text
    assert "calibrated to the base rate" in text
    assert "Boruta ETHUSDT: confirmed NOTHING (Boruta confirmed no feature)" in text
    assert "3 trial(s) on this data" in text
    assert "UNREACHABLE" in markdown(_report([], ["FULL_RL"]))


def test_reachable_tiers_are_not_called_unreachable():
    text = "\n".join(honest_lines(_report(["ret_6"], [])))
    assert "UNREACHABLE" not in text and "confirmed ret_6; filled by ranking: rsi_14, ret_1" in text


def test_tm_models_boruta_column():
    assert boruta_cell({"ETHUSDT": {"confirmed": [], "filled_by_ranking": ["a", "b"]},
                        "BTCUSDT": {"confirmed": ["x"], "filled_by_ranking": ["y"]}}) == \
        "BTCUSDT 1/2 confirmed; ETHUSDT none confirmed (2 by ranking)"
    assert boruta_cell(None) == "-"
