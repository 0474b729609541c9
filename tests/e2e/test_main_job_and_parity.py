"""End to end (slow, CI runs them): the README's main command on embedded defaults, and parity
of a mesh replay with the in-process backtest.

The demo trains with ``--fast-train`` (a reduced walk-forward) into a fresh SQLite registry;
the parity test reuses that registry with lower cascade thresholds so that the window trades,
changes tier and changes regime (a test configuration, not the shipped defaults)."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from tm_app.readme_sample import PORT_OFFSET, README, SAMPLE_ARGS, normalize, readme_block, words
from tm_common.testing.promote import force_signal_model

pytestmark = pytest.mark.slow
PARITY_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.02", "TM_SIZER_BLENDED_CONFIDENCE": "0.08",
              "TM_SIZER_KELLY_MIN_EACH": "1", "TM_SIZER_KELLY_PRIOR_B": "1.5", "TM_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env["TM_DATA_DIR"] = str(data / ".tm")
    tm = Path(sys.executable).parent / "tm"
    # the README's sample run (tm_app.readme_sample): test_readme_sample_output_is_a_real_run
    p = subprocess.run([str(tm), *SAMPLE_ARGS, "--port-offset", PORT_OFFSET,
                        "--out", str(data / "report")],
                       env=env, cwd=data, capture_output=True, text=True, timeout=1500)
    yield data, p
    subprocess.run([str(tm), "down", "--redis"], env=env, cwd=data, capture_output=True, timeout=60)


def test_main_command_on_embedded_defaults_writes_the_report(demo_run):
    data, p = demo_run
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    doc = json.loads((data / "report" / "report.json").read_text())
    html = (data / "report" / "report.html").read_text()
    assert doc["counts"]["bars"] == 3 * 90 and doc["counts"]["snapshots"] == 90   # 15 days × 6
    assert doc["stats"]["total"]["final_equity"] > 0
    assert 'id="tm-chart-data"' in html and "Equity vs buy and hold" in html   # uPlot, inline
    assert "<h2 id=\"trades\">Trades</h2>" in html and (data / "report" / "trades.csv").is_file()
    assert (data / ".tm" / "trade_matrix.db").exists()          # SQLite default
    # it stops what it started: no service and no embedded Redis outlive the run
    from tm_common.embedded import read_record
    from tm_common.settings import CommonSettings
    rec = read_record(CommonSettings.from_values(data_dir=data / ".tm"))
    assert rec is None or not psutil.pid_exists(int(rec["pid"])), rec
    assert "stopped the embedded Redis" in p.stdout
    assert "total" in p.stdout and "report:" in p.stdout        # the summary table
    # the newest refused candidate ran in a shadow book beside production, side by side
    ch = doc["challenger"]
    assert ch["candidate"].startswith("signal-") and ch["counts"]["bars"] == 3 * 90
    assert ch["counts"]["snapshots"] == 90 and "Production vs challenger" in html
    assert "challenger in shadow" in p.stdout
    # it explains itself: what traded and why, then the next steps, in the output and the report
    assert "what traded, and why" in p.stdout and "next steps:" in p.stdout
    # the replay warmed up before --start: 200 bars, not in the report's counts above
    assert doc["meta"]["warm-up"].startswith("200 bars") and "warm-up: 200 bars" in p.stdout
    (line,) = [ln for ln in p.stdout.splitlines() if ln.startswith("streams, while it runs: ")]
    assert "XREVRANGE tmrun:" in line
    assert doc["meta"]["banner"][0].startswith("production traded")
    assert doc["meta"]["models"]["regime"] and '<div class="banner">' in html


def test_readme_sample_output_is_a_real_run(demo_run):
    """The README's sample output is this run's, word for word and figure for figure (what
    differs between runs by nature is a placeholder: tm_app.readme_sample)."""
    data, p = demo_run
    assert p.returncode == 0, p.stderr[-2000:]
    ours, readme = normalize(p.stdout, data), readme_block(README.read_text())
    assert len(ours) > 20 and any("buy & hold" in ln for ln in readme)
    if words(ours) != words(readme):
        import difflib
        diff = "\n".join(difflib.unified_diff(readme, ours, "README.md", "this run", lineterm=""))
        pytest.fail("README sample output differs from a real run (regenerate it with "
                    f"`python -m tm_app.readme_sample`):\n{diff}")


def test_mesh_replay_equals_in_process_backtest(demo_run, redis_url, tmp_path):
    from tm_app.backtest import RunConfig, run_backtest
    from tm_app.mesh import run_mesh

    data, p = demo_run
    assert p.returncode == 0, p.stderr[-2000:]
    db_url = f"sqlite+aiosqlite:///{data / '.tm' / 'trade_matrix.db'}"
    force_signal_model(db_url)
    cfg = RunConfig(start_ms=1_735_689_600_000, end_ms=1_735_689_600_000 + 100 * 4 * 3600_000,
                    database_url=db_url, extra_env=PARITY_ENV)
    backtest = asyncio.run(run_backtest(cfg)).trading_view()
    mesh = run_mesh(cfg, redis_url=redis_url, data_dir=tmp_path, port_offset=500,
                    log=lambda m: None).record.trading_view()
    assert len(backtest["orders"]) > 0 and len(backtest["fills"]) > 0, "the window must trade"
    assert len({t[2] for t in backtest["tiers"]}) >= 2, "the window must change tier"
    assert len({r[2] for r in backtest["regimes"]}) >= 2, "the window must change regime"
    for key in ("orders", "fills", "equity", "tiers", "regimes"):
        assert mesh[key] == backtest[key], f"{key} differ between the mesh and the backtest"

