"""``bench/run_all.py``: a quick smoke run of two cheap benches into a temp folder (the JSON and
Markdown carry their figures), by default into ``<out-root>/<UTC time>/`` with ``latest`` pointing
at it; a failing bench reported as failed with a non-zero exit; nothing written beside the
source."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RUN_ALL = ROOT / "bench" / "run_all.py"


def _module():
    if str(RUN_ALL.parent) not in sys.path:        # its siblings, as when run as a script
        sys.path.insert(0, str(RUN_ALL.parent))
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


def test_by_default_a_run_gets_its_own_ignored_folder_and_latest_points_at_it(tmp_path):
    root = tmp_path / "out"
    p = subprocess.run([sys.executable, str(RUN_ALL), "--quick", "--only", "features",
                        "--out-root", str(root)],
                       cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    runs = [d for d in root.iterdir() if d.name not in ("latest", "cache")]
    assert len(runs) == 1 and re.fullmatch(r"\d{8}T\d{6}Z", runs[0].name), runs
    run = runs[0]
    for name in ("results.json", "results.md", "features.json", "features.log"):
        assert (run / name).is_file(), name
    assert (root / "latest").resolve() == run.resolve()
    doc = json.loads((root / "latest" / "results.json").read_text())
    assert doc["out_dir"].endswith(run.name) and set(doc["benches"]) == {"features"}
    assert doc["timestamp"].replace("-", "").replace(":", "").startswith(run.name[:15])


def test_results_are_not_kept_beside_the_source():
    assert not (ROOT / "bench" / "results.json").exists()
    assert not (ROOT / "bench" / "results.md").exists()
    ignored = subprocess.run(["git", "check-ignore", "-q", "bench/out/x/results.md"], cwd=ROOT,
                             check=False)
    assert ignored.returncode == 0, "bench/out/ must be ignored by git"


def test_point_latest_replaces_the_previous_link(tmp_path):
    _module()
    import results_writer

    a, b = tmp_path / "20260101T000000Z", tmp_path / "20260102T000000Z"
    a.mkdir()
    b.mkdir()
    results_writer.point_latest(tmp_path, a)
    latest = results_writer.point_latest(tmp_path, b)
    assert latest.resolve() == b.resolve() and latest.is_symlink()
    assert results_writer.run_dir_name(datetime(2026, 11, 22, 1, 41, 51, tzinfo=UTC)) == \
        "20261122T014151Z"
