"""``bench/run_all.py``: a quick smoke run of two cheap benches into a temp folder (the JSON and
Markdown carry their figures), and a failing bench reported as failed with a non-zero exit."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RUN_ALL = ROOT / "bench" / "run_all.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_run_all", RUN_ALL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod                    # dataclasses look the module up
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_of_two_benches_writes_json_and_markdown(tmp_path):
    p = subprocess.run([sys.executable, str(RUN_ALL), "--quick", "--only", "features,risk",
                        "--out", str(tmp_path / "out"), "--results", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    for key in ("timestamp", "git_commit", "machine", "loadavg_start", "loadavg_end", "figures"):
        assert key in doc
    assert doc["machine"]["cpu_count"] >= 1 and doc["machine"]["python"]
    assert set(doc["benches"]) == {"features", "risk"}
    for b in doc["benches"].values():
        assert b["status"] == "ok" and len(b["loadavg_start"]) == 3
    names = {(f["bench"], f["name"]) for f in doc["figures"]}
    assert ("features", "IncrementalFeatures.update p50") in names
    assert ("risk", "decide p99") in names
    assert all(isinstance(f["value"], float) for f in doc["figures"])
    md = (tmp_path / "results.md").read_text()
    assert "| bench | figure | value | target | status |" in md
    assert "| risk | decide p50 |" in md and "| features | IncrementalFeatures.update p99 |" in md
    assert (tmp_path / "out" / "risk.json").is_file() and (tmp_path / "out" / "risk.log").is_file()


def test_a_failing_bench_is_a_failed_row(tmp_path):
    ra = _module()
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('no venue here')\n")
    rec = ra.run_one(ra.Bench("bad", str(bad), (), (), lambda d: []), False, tmp_path, {})
    assert rec["status"] == "failed" and "no venue here" in rec["error"]
    figs = ra.collect("bad", ra.Bench("bad", str(bad), (), (), lambda d: []), rec)
    assert [(f.status, f.value) for f in figs] == [("failed", None)]


def test_targets_are_judged():
    ra = _module()
    assert ra.Figure("m", "p50", 4.0, "ms", ("<=", 5)).status == "met"
    assert ra.Figure("m", "p99", 12.0, "ms", ("<=", 10)).status == "missed"
    assert ra.Figure("m", "claim", 50.0, "ms", ("<", 50)).status == "missed"
    assert ra.Figure("b", "rate", 6000.0, "bars/s", (">=", 5000)).status == "met"
    assert ra.Figure("m", "p50", None, "ms", ("<=", 5)).status == "no data"
    assert ra.Figure("m", "p50", 4.0, "ms", ("<=", 5)).target_text == "≤ 5 ms"
    assert ra.Figure("b", "rate", 1.0, "bars/s", (">=", 5000)).target_text == "≥ 5,000 bars/s"
