"""``tm research`` as a user runs it: a small window, both report files written, one row per
candidate matching its registry record, trial counts growing, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tm_app.research import candidates
from tm_quant.families import known

TM = str(Path(sys.executable).parent / "tm")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(TM_DATA_DIR=str(tmp_path / "tm"),
               TM_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'tm' / 'registry.db'}")
    (tmp_path / "tm").mkdir(exist_ok=True)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([TM, *args], env=env, capture_output=True, text=True, timeout=400,
                          check=False)


def test_every_registered_family_is_a_candidate_by_default():
    assert candidates(None) == known() and candidates("all") == known()
    assert candidates("logistic,logistic") == ("logistic",)


def test_research_writes_both_files_and_its_rows_are_the_registry(tmp_path):
    env = _env(tmp_path)
    base = ["research", "--fast", "--windows", "3", "--instruments", "ETHUSDT", "--families",
            "logistic", "--no-progress"]
    a = _run([*base, "--out", str(tmp_path / "r1")], env)
    assert a.returncode == 0, a.stderr
    assert "[1/1] logistic: walk-forward" in a.stdout and "registered signal-logistic-" in a.stdout
    b = _run([*base, "--seed", "8", "--out", str(tmp_path / "r2")], env)
    assert b.returncode == 0, b.stderr
    docs = [json.loads((tmp_path / d / "research.json").read_text()) for d in ("r1", "r2")]
    for d in ("r1", "r2"):
        page = (tmp_path / d / "research.html").read_text()
        assert "<table>" in page and "logistic" in page
    rows = [doc["rows"][0] for doc in docs]
    assert [r["n_trials"] for r in rows] == [1, 2]         # the second run counts the first
    listed = subprocess.run([sys.executable, "-c", "from tm_trainer.models_cli import models_app; "
                             "models_app(prog_name='tm models')", "list", "--kind", "signal",
                             "--json"], env=env, capture_output=True, text=True, check=True)
    reg = {r["version"]: r for r in json.loads(listed.stdout)}
    assert set(reg) == {r["version"] for r in rows}
    for r in rows:
        m = reg[r["version"]]["metrics"]
        assert reg[r["version"]]["stage"] == "candidate"       # research never promotes
        assert (m["mean_ic"], m["sharpe"], m["dsr"], m["n_trials"]) == \
            (r["ic"], r["sharpe"], r["dsr"], r["n_trials"])
        assert r["horizon_bars"] == 6 and set(r["instruments"]) == {"ETHUSDT"}
        assert r["by_year"] and r["ic_t"] is not None
        assert r["boruta"] == {} and r["calibration"]["a"] >= 0   # logistic: fixed features


def test_an_unknown_family_is_one_line(tmp_path):
    p = _run(["research", "--families", "nope", "--no-progress"], _env(tmp_path))
    assert p.returncode == 2 and "unknown signal family 'nope'" in p.stderr
    assert "Traceback" not in p.stderr
