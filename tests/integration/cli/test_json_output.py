"""`--json` on the inspection commands: valid JSON (never a bare NaN) with the table's content."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tm_common.testing.redis import delete_namespace

TM = [sys.executable, "-m", "tm_app.stack.main"]


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(TM_DATA_DIR=str(tmp_path / "tm"), **extra)
    return env


def _strict(text: str):
    def no_constants(name: str):
        raise ValueError(f"bare {name} in the JSON")
    return json.loads(text, parse_constant=no_constants)


def test_report_json_turns_nan_into_null(tmp_path):
    v = {"total_return": 0.0123, "sharpe": float("nan"), "buy_and_hold": float("inf")}
    doc = {"meta": {"mode": "demo"}, "stats": {"total": v, "per_instrument": {"BTCUSDT": v}}}
    (tmp_path / "report.json").write_text(json.dumps(doc))       # as a run may have written it
    p = subprocess.run([*TM, "report", str(tmp_path), "--json"], env=_env(tmp_path),
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    out = _strict(p.stdout)
    assert out["stats"]["total"] == {"total_return": 0.0123, "sharpe": None, "buy_and_hold": None}
    table = subprocess.run([*TM, "report", str(tmp_path)], env=_env(tmp_path, COLUMNS="80"),
                           capture_output=True, text=True, timeout=60, check=False)
    assert table.returncode == 0 and "1.23%" in table.stdout and "…" not in table.stdout


def test_streams_json_lists_every_stream_with_its_groups(tmp_path):
    import redis

    url = os.environ.get("TM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    ns = f"tmtest:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(url)
    try:
        client.xadd(f"{ns}md.bar", {"v": "1"})
        client.xgroup_create(f"{ns}md.bar", "regime", id="0")
        p = subprocess.run([*TM, "streams", "--json"], env=_env(tmp_path, TM_REDIS_URL=url,
                                                                 TM_NAMESPACE=ns),
                           capture_output=True, text=True, timeout=60, check=False)
        assert p.returncode == 0, p.stderr
        out = _strict(p.stdout)
        assert out["namespace"] == ns
        bar = next(s for s in out["streams"] if s["stream"] == "md.bar")
        assert bar["length"] == 1 and bar["dead_letters"] == 0
        assert [(g["name"], g["lag"], g["pending"]) for g in bar["groups"]] == [("regime", 1, 0)]
    finally:
        delete_namespace(url, ns)
        client.close()
