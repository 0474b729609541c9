"""The banner of a run says what traded and why, and the next steps (issue: a demo that explains
itself)."""

from __future__ import annotations

from tm_app.explain import ModelsInUse, banner

REFUSED = {"version": "signal-x", "stage": "candidate", "gate_passed": False,
           "why": "OOS mean IC 0.0032 < 0.03; OOS Sharpe after costs -0.49 <= 0.5",
           "mean_ic": 0.0032, "sharpe": -0.49}


def summary(orders: int, challenger: dict | None = None) -> dict:
    s = {"stats": {"total": {"total_return": 0.0 if not orders else 0.0123, "sharpe": 1.5}},
         "counts": {"orders": orders}, "tiers": {"FLAT": 450}}
    if challenger:
        s["challenger"] = challenger
    return s


def test_flat_production_names_the_refused_model_and_its_gates():
    lines = banner(summary(0), ModelsInUse(None, "regime-1", None, REFUSED))
    assert lines[0] == ("production traded flat: no production signal model: signal-x was "
                        "refused by its walk-forward gates (OOS mean IC 0.0032 < 0.03; OOS "
                        "Sharpe after costs -0.49 <= 0.5)")
    assert "next steps:" in lines
    assert any("tm models promote signal-x --force --reason" in ln for ln in lines)
    assert any("tm train --gate-min-ic" in ln for ln in lines)


def test_challenger_line_and_replay_is_not_forward_evidence():
    ch = {"candidate": "signal-x", "counts": {"orders": 12},
          "stats": {"total": {"total_return": -0.02, "sharpe": -0.7}, "signal_ic": {"all": -0.05}},
          "sizing_reasons": {}}
    lines = banner(summary(0, ch), ModelsInUse(None, None, None, REFUSED), replay=True)
    assert lines[1] == ("shadow challenger signal-x: 12 orders, return -2.00 %, Sharpe -0.700, "
                        "realised IC -0.050")
    assert "not forward evidence" in lines[2]
    flat = dict(ch, counts={"orders": 0}, sizing_reasons={"confidence 0.12 < 0.30": 450})
    assert "traded flat (realised IC -0.050): confidence 0.12 < 0.30" in banner(
        summary(0, flat), None, replay=False)[1]


def test_trading_production_and_unreadable_registry():
    lines = banner(summary(7), ModelsInUse("signal-p", None, None, None))
    assert lines[0].startswith("production traded with signal model signal-p: 7 orders")
    assert "could not be read" in banner(summary(7), None)[0]


def test_when_nothing_traded_it_says_how_to_watch_the_mechanics_and_that_it_proves_nothing():
    flat = {"candidate": "signal-x", "counts": {"orders": 0},
            "stats": {"total": {"total_return": 0.0, "sharpe": None}, "signal_ic": {"all": 0.06}},
            "sizing_reasons": {"confidence 0.021 < 0.30": 450}}
    lines = banner(summary(0, flat), ModelsInUse(None, None, None, REFUSED))
    (hint,) = [ln for ln in lines if "watch the mechanics" in ln]
    assert "not evidence" in hint and "TM_SIZER_KELLY_CONFIDENCE=0.02" in hint \
        and "tm backtest --start" in hint
    traded = dict(flat, counts={"orders": 3})                 # the challenger traded: no hint
    assert not [ln for ln in banner(summary(0, traded), None) if "watch the mechanics" in ln]
    assert not [ln for ln in banner(summary(7), None) if "watch the mechanics" in ln]


def test_a_candidate_whose_gates_passed_is_told_to_earn_its_forward_evidence():
    passed = dict(REFUSED, gate_passed=True, why="gates passed")
    lines = banner(summary(0), ModelsInUse(None, None, None, passed))
    (paper,) = [ln for ln in lines if "tm paper" in ln]
    assert "its gates passed" in paper and "the weekly `tm train`" in paper \
        and "tm models promote-ready" in paper
    (now,) = [ln for ln in lines if "--force" in ln]
    assert "it has no forward evidence yet" in now and "the gates said no" not in now
    refused = banner(summary(0), ModelsInUse(None, None, None, REFUSED))
    assert any("the gates said no" in ln for ln in refused)


def test_a_paper_run_says_how_far_the_challenger_is_from_its_forward_evidence():
    ch = {"candidate": "signal-x", "counts": {"orders": 3},
          "stats": {"total": {"total_return": 0.01, "sharpe": 0.4}, "signal_ic": {"all": 0.02}},
          "sizing_reasons": {}}
    cand = dict(REFUSED, gate_passed=True, forward_days=9.5, forward_ic=0.031)
    lines = banner(summary(0, ch), ModelsInUse(None, None, None, cand), replay=False,
                   min_shadow_days=28)
    assert "  forward evidence so far: 9.5 of 28 days, realised IC 0.031" in lines
    fresh = dict(cand, forward_days=0.0, forward_ic=None)
    assert "  forward evidence so far: 0.0 of 28 days" in banner(
        summary(0, ch), ModelsInUse(None, None, None, fresh), replay=False)
    # a replay says it does not count; another candidate's evidence is not this one's
    assert not [ln for ln in banner(summary(0, ch), ModelsInUse(None, None, None, cand))
                if "forward evidence so far" in ln]
    other = dict(cand, version="signal-y")
    assert not [ln for ln in banner(summary(0, ch), ModelsInUse(None, None, None, other),
                                    replay=False) if "forward evidence so far" in ln]
