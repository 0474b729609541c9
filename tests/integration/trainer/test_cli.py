"""``python -m tm_trainer`` / ``tm models`` as a user runs them: a --fast CI training run on the
shipped data, registry commands, model.promoted on Redis, one-line errors."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

TRAIN = [sys.executable, "-m", "tm_trainer"]
MODELS = [sys.executable, "-c", "from tm_trainer.models_cli import models_app; models_app(prog_name='tm models')"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(TM_DATA_DIR=str(tmp_path / "tm"),
               TM_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'tm' / 'registry.db'}", **extra)
    return env


def run(argv: list[str], env: dict[str, str], timeout_s: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess, needle: str, code: int) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


def _models(env, *args) -> subprocess.CompletedProcess:
    return run([*MODELS, *args], env)


def test_fast_ci_run_on_shipped_data_registers_and_decides(tmp_path):
    env = _env(tmp_path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = run([*TRAIN, "--fast", "--instruments", "ETHUSDT", "--windows", "2", "--no-publish",
                "--no-progress", "--report-json", str(tmp_path / "report.json")], env)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    # < 60 s of work; the wall clock also depends on what else shares the 2 cores
    assert cpu < 60, f"fast run used {cpu:.0f} s CPU ({wall:.0f} s wall)"
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["report"]["summary"]["n_windows"] == 2
    out = proc.stdout
    assert f"registered {rep['version']}" in out and "registered regime-" in out
    listing = json.loads(_models(env, "list", "--json").stdout)
    by_kind = {r["kind"]: r for r in listing}
    sig, reg = by_kind["signal"], by_kind["regime"]
    assert sig["family"] == "xgboost" and reg["family"] is None     # the built-in family
    if rep["gate_passed"]:   # on history alone: it waits for forward evidence
        assert sig["stage"] == "candidate" and "awaits forward evidence" in out
    else:  # refused: the reasons are printed and stored with the candidate
        assert sig["stage"] == "candidate" and "refused" in out
        assert sig["why"] == "; ".join(rep["reasons"]) and "OOS" in sig["why"]
    assert reg["stage"] == "production" and "promoted regime" in out

    again = run([*TRAIN, "--fast", "--instruments", "ETHUSDT", "--windows", "2", "--no-publish",
                 "--no-progress", "--no-regime"], env)
    assert again.returncode == 0, again.stderr  # same data + seed: same version, idempotent
    assert len(json.loads(_models(env, "list", "--json").stdout)) == 2

    # the gates are configuration: lowered, the same model passes them, and the choice is said
    # and recorded with the model
    low = run([*TRAIN, "--fast", "--instruments", "ETHUSDT", "--windows", "2", "--no-publish",
               "--no-progress", "--no-regime", "--gate-min-ic", "-1", "--gate-min-sharpe", "-100",
               "--gate-min-dsr", "0", "--gate-min-timing-t", "-100", "--gate-min-positive-share",
               "0"], env)
    assert low.returncode == 0, low.stderr
    assert "gates changed from the defaults (IC >= 0.03, Sharpe > 0.5, deflated Sharpe >= 0.95, " \
        "timing t >= 1.645, positive in >= 0.75 of 4 sub-periods) to IC >= -1.0" in low.stdout
    assert "gates (IC >= -1.0, Sharpe > -100.0, deflated Sharpe >= 0.0, timing t >= -100.0, " \
        "positive in >= 0.0 of 4 sub-periods): PASS" in low.stdout
    assert "trial(s) on this data" in low.stdout and "calibration (Platt" in low.stdout
    # passed on history only: a candidate awaiting forward evidence, not production
    passed = [r for r in json.loads(_models(env, "list", "--json").stdout)
              if r["kind"] == "signal" and r["version"] != sig["version"]]
    assert len(passed) == 1 and passed[0]["stage"] == "candidate", passed
    assert f"{passed[0]['version']} passed its gates and awaits forward evidence" in low.stdout
    waiting = _models(env, "promote-ready", "--no-publish")
    assert waiting.returncode == 0 and "nothing promoted yet" in waiting.stdout, waiting.stderr
    # 30 days of paper trading in a shadow book with a positive realised IC: promoted
    _add_paper_shadow(env["TM_DATABASE_URL"], passed[0]["version"], days=30, ic=0.04)
    listed = {r["version"]: r for r in json.loads(_models(env, "list", "--json").stdout)}
    assert (listed[passed[0]["version"]]["forward_days"],
            listed[passed[0]["version"]]["forward_ic"]) == (30.0, 0.04)
    assert listed[sig["version"]]["forward_days"] == 0.0 and listed[sig["version"]]["forward_ic"] is None
    assert "30.0 (0.0400)" in run([*MODELS, "list"], {**env, "COLUMNS": "300"}).stdout
    ready = _models(env, "promote-ready", "--no-publish")
    assert ready.returncode == 0, ready.stderr
    assert f"promoted signal {passed[0]['version']} (previous None)" in ready.stdout
    prod = [r for r in json.loads(_models(env, "list", "--json").stdout)
            if r["kind"] == "signal" and r["stage"] == "production"]
    assert [p["version"] for p in prod] == [passed[0]["version"]]
    bad = run([*MODELS, "promote-ready"], {**env, "TM_PROMOTE_MIN_SHADOW_DAYS": "many"})
    assert_one_line_error(bad, "TM_PROMOTE_MIN_SHADOW_DAYS must be a number of days", 2)


def _add_paper_shadow(db_url: str, version: str, *, days: float, ic: float) -> None:
    """What a shadow book in paper mode writes into the candidate's registry row."""
    import asyncio

    from tm_common.db import make_engine
    from tm_common.models.evidence import DAY_MS, ShadowRecord
    from tm_common.models.registry import ModelRegistry

    async def go() -> None:
        engine = make_engine(db_url)
        try:
            end = 1_760_000_000_000
            await ModelRegistry(engine).record_shadow(version, ShadowRecord(
                run_id="paper-test", mode="paper", first_bar_ms=end - int(days * DAY_MS),
                last_bar_ms=end, bars=int(days * 6), total_return=0.01, sharpe=0.7,
                max_drawdown=0.03, ic=ic, orders=12, updated_at_ms=end))
        finally:
            await engine.dispose()
    asyncio.run(go())


def _signal_bundle(version: str) -> bytes:
    import numpy as np
    import xgboost as xgb
    from tm_common.models.bundle import Bundle
    from tm_quant.features import FEATURE_NAMES
    from tm_quant.garch import DEFAULT_GARCH_PARAMS

    X = np.random.default_rng(0).normal(size=(100, 2))
    b = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(X, label=X[:, 0] > 0), 2)
    m = {"kind": "signal", "version": version, "horizon_bars": 6, "feature_names": list(FEATURE_NAMES),
         "instruments": {"BTCUSDT": {"booster": "BTCUSDT.ubj", "features": ["ret_1", "ret_2"],
                                     "garch": DEFAULT_GARCH_PARAMS.to_dict(), "first_bar_ms": 0,
                                     "prob_calibration": {"a": 1.0, "b": 0.0}}}, "metrics": {}}
    return Bundle(m, {"BTCUSDT.ubj": bytes(b.save_raw("ubj"))}).to_bytes()


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """In-process CLI settings (TM_* in this process) on a fresh SQLite registry with two signal
    candidates, s-old registered before s-new."""
    import asyncio

    from tm_common.db import make_engine
    from tm_common.db.migrate import migrate
    from tm_common.models.registry import ModelRegistry

    env = _env(tmp_path)
    for k in [k for k in os.environ if k.startswith("TM_")]:
        monkeypatch.delenv(k)
    for k in ("TM_DATA_DIR", "TM_DATABASE_URL"):
        monkeypatch.setenv(k, env[k])
    migrate(env["TM_DATABASE_URL"])

    async def seed():
        engine = make_engine(env["TM_DATABASE_URL"])
        ticks = iter(range(1000, 10**9, 1000))
        reg = ModelRegistry(engine, clock_ms=lambda: next(ticks))
        for v in ("s-old", "s-new"):
            await reg.register("signal", v, _signal_bundle(v), data_hash="h", features={}, params={},
                               seed=1, metrics={"mean_ic": 0.0, "why": "OOS mean IC 0 < 0.03"})
        await engine.dispose()

    asyncio.run(seed())
    return monkeypatch


def _cli(app, *args):
    from typer.testing import CliRunner
    return CliRunner().invoke(app, list(args))


def _one_line(result, needle: str, code: int) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_models_promote_rollback_and_publish(cli_env, redis_url, namespace):
    from tm_trainer.models_cli import models_app

    cli_env.setenv("TM_REDIS_URL", redis_url)
    cli_env.setenv("TM_NAMESPACE", namespace)
    cli_env.setenv("TM_PROMOTE_MIN_SHADOW_DAYS", "0")     # evidence: test_promote_needs_...
    listing = json.loads(_cli(models_app, "list", "--json").stdout)
    assert [(r["version"], r["stage"]) for r in listing] == [("s-new", "candidate"),
                                                             ("s-old", "candidate")]
    assert listing[0]["why"] == "OOS mean IC 0 < 0.03"
    for v in ("s-old", "s-new"):
        r = _cli(models_app, "promote", v, "--reason", "manual test")
        assert r.exit_code == 0 and f"production signal: {v}" in r.stdout, r.stderr
    r = _cli(models_app, "rollback", "signal", "--reason", "bad live IC")
    assert r.exit_code == 0 and "production signal: s-old (previous s-new)" in r.stdout, r.stderr
    stages = {r["version"]: r["stage"] for r in json.loads(_cli(models_app, "list", "--json").stdout)}
    assert stages == {"s-old": "production", "s-new": "archived"}
    assert "s-old" in _cli(models_app, "list").stdout  # the rich table renders

    import redis
    entries = redis.Redis.from_url(redis_url).xrange(f"{namespace}models.promoted")
    bodies = [json.loads(f[b"body"]) for _, f in entries]
    assert [f[b"type"] for _, f in entries] == [b"model.promoted"] * 3
    assert [(b["version"], b["previous_version"]) for b in bodies] == [
        ("s-old", None), ("s-new", "s-old"), ("s-old", "s-new")]
    assert bodies[-1]["reason"] == "bad live IC" and bodies[-1]["kind"] == "signal"
    _one_line(_cli(models_app, "rollback", "signal", "--no-publish"), "no archived signal version", 1)


def test_promote_needs_forward_shadow_evidence_or_a_forced_reason(cli_env):
    """A signal candidate below the minimum of paper/live shadow days is refused (replays do
    not count); --force needs a reason, which the registry records with the evidence."""
    import asyncio

    from tm_common.db import make_engine
    from tm_common.models.evidence import DAY_MS, ShadowRecord
    from tm_common.models.registry import ModelRegistry
    from tm_trainer.models_cli import models_app

    url = os.environ["TM_DATABASE_URL"]
    cli_env.setenv("COLUMNS", "220")            # the tables unwrapped, for the asserts

    def shadow(version: str, run_id: str, mode: str, days: int) -> None:
        async def go():
            engine = make_engine(url)
            await ModelRegistry(engine).record_shadow(version, ShadowRecord(
                run_id=run_id, mode=mode, first_bar_ms=0, last_bar_ms=days * DAY_MS,
                bars=days * 6, total_return=0.01, sharpe=0.5, max_drawdown=0.02, ic=0.04,
                orders=12, updated_at_ms=1))
            await engine.dispose()
        asyncio.run(go())

    async def history(version: str) -> list:
        engine = make_engine(url)
        rec = await ModelRegistry(engine).get(version)
        await engine.dispose()
        return rec.history

    r = _cli(models_app, "promote", "s-new", "--no-publish")
    _one_line(r, "0.0 days of forward shadow evidence (paper/live), below the minimum of 28", 1)
    assert "walk-forward record" in r.stdout and "shadow record: 0.0 forward days" in r.stdout
    shadow("s-new", "tm:shadow:s-new:", "paper", 10)
    shadow("s-new", "tmrun:1:shadow:s-new:", "replay", 180)
    r = _cli(models_app, "promote", "s-new", "--no-publish")
    _one_line(r, "10.0 days of forward shadow evidence", 1)
    assert "replay (not counted)" in r.stdout and "paper" in r.stdout
    _one_line(_cli(models_app, "promote", "s-new", "--force", "--no-publish"),
              "--force needs a --reason", 1)
    assert (await_(history("s-new")))[-1]["stage"] == "candidate"      # nothing changed
    r = _cli(models_app, "promote", "s-new", "--force", "--reason", "desk override: test",
             "--no-publish")
    assert r.exit_code == 0 and "production signal: s-new" in r.stdout, r.stderr
    last = await_(history("s-new"))[-1]
    assert last["stage"] == "production" and last["reason"] == "desk override: test"
    assert last["evidence"]["forced"] is True and last["evidence"]["forward_days"] == 10.0
    shadow("s-old", "tm:shadow:s-old:", "live", 30)              # enough: no force needed
    r = _cli(models_app, "promote", "s-old", "--no-publish", "--min-shadow-days", "30")
    assert r.exit_code == 0 and "production signal: s-old" in r.stdout, r.stderr
    last = await_(history("s-old"))[-1]
    assert last["reason"] == "manual promote" and "forced" not in last["evidence"]
    _one_line(_cli(models_app, "promote", "s-new", "--min-shadow-days", "-1"), ">= 0", 2)


def await_(coro):
    import asyncio
    return asyncio.run(coro)


def test_errors_are_one_line(cli_env, tmp_path):
    from tm_trainer.models_cli import models_app
    from tm_trainer.train_cli import train_app

    _one_line(_cli(train_app, "--history-dir", str(tmp_path / "none"), "--no-progress"),
              "history file not found", 1)
    _one_line(_cli(train_app, "--train-end", "2025-13-01"), "not YYYY-MM-DD", 2)
    _one_line(_cli(train_app, "--instruments", ","), "instrument", 2)
    _one_line(_cli(train_app, "--horizon", "0"), "horizon", 2)
    _one_line(_cli(train_app, "--windows", "0"), "windows", 2)
    _one_line(_cli(train_app, "--gate-min-ic", "nan"), "must be finite", 2)
    _one_line(_cli(train_app, "--train-end", "2022-02-01", "--no-progress"), "too few", 1)
    _one_line(_cli(models_app, "promote", "nope"), "unknown model version", 1)
    _one_line(_cli(models_app, "rollback", "weird"), "unknown kind", 2)
    _one_line(_cli(train_app, "--update", "--no-progress"), "needs a production signal model", 1)
    # and from a shell: one line, no traceback, for missing data
    assert_one_line_error(run([*TRAIN, "--history-dir", str(tmp_path / "none"), "--no-progress"],
                              _env(tmp_path)), "history file not found", 1)


def test_a_mounted_subcommand_does_not_start_a_training(cli_env):
    import typer
    from tm_trainer.train_cli import train_app

    called = []
    sub = typer.Typer(name="sub")

    @sub.callback(invoke_without_command=True)
    def _sub() -> None:
        called.append(True)

    train_app.add_typer(sub)
    try:
        r = _cli(train_app, "--history-dir", "/nonexistent", "sub")
    finally:
        train_app.registered_groups.pop()
    assert r.exit_code == 0 and called == [True], (r.stdout, r.stderr)
