"""Gates that noise cannot pass: on driftless random walks the combined gates pass at most one
seed in six, and no gate passes every seed (tm_trainer.noise, the bench's code on fewer seeds)."""

from __future__ import annotations

from tm_trainer.noise import GATES, NoiseConfig, false_pass_table


def test_the_combined_gates_refuse_random_walks():
    out = false_pass_table(range(101, 107), NoiseConfig(n_bars=2600, n_windows=10))
    assert out["seeds"] == 6 and set(out["passes"]) == set(GATES)
    assert out["passes"]["all"] <= 1, out["runs"]
    assert out["passes"]["classic (IC+Sharpe)"] <= 1, out["runs"]
    for g in GATES:
        assert out["passes"][g] < 6, (g, out["runs"])
    # "all" never passes a seed that one of its parts refused
    for r in out["runs"]:
        assert r["passes"]["all"] == all(r["passes"][g] for g in GATES[:5])
