"""``tm train --family NAME`` as a user runs it: the example family trains on the shipped data
(--fast), its gate result is printed and recorded, it is registered with its family; an unknown
family and ``--update`` of a family are one error line each."""

from __future__ import annotations

import json
import resource

from .test_cli import MODELS, TRAIN, _env, assert_one_line_error, run

FAST = ["--fast", "--instruments", "ETHUSDT", "--windows", "2", "--no-publish", "--no-progress",
        "--no-regime"]


def test_tm_train_family_logistic_trains_gates_and_registers(tmp_path):
    env = _env(tmp_path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = run([*TRAIN, *FAST, "--family", "logistic", "--report-json",
                str(tmp_path / "r.json")], env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (after.ru_utime - before.ru_utime) < 60
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["family"] == "logistic" and rep["version"].startswith("signal-logistic-")
    out = proc.stdout
    assert "signal family: logistic" in out and "gates (IC >= 0.03, Sharpe > 0.5, deflated " \
        "Sharpe >= 0.95, timing t >= 1.645, positive in >= 0.75 of 4 sub-periods): " in out
    assert "deflated Sharpe" in sig_line(out) and "1 trial(s) on this data" in out
    assert f"registered {rep['version']}" in out
    listing = json.loads(run([*MODELS, "list", "--json"], env).stdout)
    assert len(listing) == 1
    sig = listing[0]
    assert sig["version"] == rep["version"] and sig["family"] == "logistic"
    assert sig["stage"] == "candidate"      # passed or not, it has no forward evidence yet
    assert ("awaits forward evidence" in out) == rep["gate_passed"]
    assert sig["why"] == ("; ".join(rep["reasons"]) or "gates passed")


def test_family_errors_are_one_line(tmp_path):
    env = _env(tmp_path)
    assert_one_line_error(run([*TRAIN, *FAST, "--family", "nope"], env),
                          "unknown signal family 'nope': this code knows xgboost, logistic, random_forest, trend", 2)
    assert_one_line_error(run([*TRAIN, *FAST, "--family", "logistic", "--update"], env),
                          "--update continues the built-in xgboost family", 2)


def sig_line(out: str) -> str:
    """The first line of ``tm train``'s honest-gates block."""
    return next((ln for ln in out.splitlines() if ln.startswith("deflated Sharpe")), "")
