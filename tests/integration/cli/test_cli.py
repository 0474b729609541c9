"""The ``tm`` command as a user runs it: errors are one line, up/status/down on real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tm_app.stack.main import app
from typer.testing import CliRunner

TM = [sys.executable, "-m", "tm_app.stack.main"]


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(TM_DATA_DIR=str(tmp_path / "tm"), **extra)
    return env


def tm(args: list[str], env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(TM + args, env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=False)


def assert_one_line_error(proc_or_result, needle: str) -> None:
    """Exactly one ``error:`` line containing ``needle``, no traceback (``skip`` notes allowed)."""
    err = getattr(proc_or_result, "stderr", None)
    if err is None or not isinstance(proc_or_result, subprocess.CompletedProcess):
        err = proc_or_result.output
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0], err
    assert all(ln in errors or ln.startswith("skip ") for ln in lines), err


@pytest.mark.parametrize("command", ["status", "up"])
def test_unknown_service_is_a_one_line_usage_error(command, tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("TM_")]:
        monkeypatch.delenv(k)  # the in-process CLI reads TM_* (e.g. a TM_SERVICES_FILE)
    monkeypatch.setenv("TM_DATA_DIR", str(tmp_path / "tm"))
    result = CliRunner().invoke(app, [command, "--services", "ingest,nope"])
    assert result.exit_code == 2
    assert_one_line_error(result, "unknown service(s): nope")
    assert "choose from" in result.output and "ingest" in result.output


def test_unknown_service_from_a_shell(tmp_path):
    proc = tm(["up", "--services", "nope"], _clean_env(tmp_path))
    assert proc.returncode == 2
    assert_one_line_error(proc, "unknown service(s): nope")


def test_unreachable_redis_is_one_line(tmp_path, fk, services_file):
    env = _clean_env(tmp_path, TM_REDIS_URL=f"redis://127.0.0.1:{fk.free_port()}/0",
                     TM_SERVICES_FILE=str(services_file), **fk.env())
    proc = tm(["up", "--foreground"], env)
    assert proc.returncode == 1
    assert_one_line_error(proc, "cannot reach Redis at redis://127.0.0.1:")


def test_unreachable_database_is_one_line(tmp_path, fk):
    url = f"postgresql+asyncpg://postgres:s3cret@127.0.0.1:{fk.free_port()}/x"
    proc = tm(["migrate"], _clean_env(tmp_path, TM_DATABASE_URL=url))
    assert proc.returncode == 1
    assert_one_line_error(proc, "cannot reach database at postgresql+asyncpg://postgres:***@")
    assert "s3cret" not in proc.stderr


def test_query_string_passwords_are_hidden_in_error_lines(tmp_path, fk, services_file):
    """``?password=`` (and any secret-named parameter) is redacted like a netloc password."""
    secret = "SECqs-pw-7d1e"
    env = _clean_env(tmp_path, TM_REDIS_URL=f"redis://127.0.0.1:{fk.free_port()}/0"
                     f"?password={secret}&db=0", TM_SERVICES_FILE=str(services_file), **fk.env())
    proc = tm(["up", "--foreground"], env)
    assert proc.returncode == 1
    assert_one_line_error(proc, "cannot reach Redis at redis://127.0.0.1:")
    assert "?password=***&db=0" in proc.stderr and secret not in proc.stderr + proc.stdout
    url = (f"postgresql+asyncpg://postgres@127.0.0.1:{fk.free_port()}/x"
           f"?password={secret}&sslpassword={secret}x")
    proc = tm(["migrate"], _clean_env(tmp_path, TM_DATABASE_URL=url))
    assert proc.returncode == 1
    assert_one_line_error(proc, "cannot reach database at postgresql+asyncpg://postgres@")
    assert "?password=***&sslpassword=***" in proc.stderr, proc.stderr
    assert secret not in proc.stderr + proc.stdout


def test_status_when_not_running(tmp_path):
    proc = tm(["status"], _clean_env(tmp_path))
    assert proc.returncode == 1
    assert_one_line_error(proc, "tm is not running")


def test_explicitly_requested_service_without_main_is_refused(tmp_path, fk):
    table = tmp_path / "services.json"
    table.write_text(json.dumps([{"name": "half", "module": "json", "port": fk.free_port()},
                                 {"name": "none", "module": "tm_no_such_mod", "port": 1}]))
    env = _clean_env(tmp_path, TM_SERVICES_FILE=str(table))
    proc = tm(["up", "--services", "none"], env)
    assert proc.returncode == 1
    assert_one_line_error(proc, "cannot start none: module tm_no_such_mod is not installed")
    proc = tm(["up", "--services", "half"], env)
    assert_one_line_error(proc, "package json has no __main__")


@pytest.fixture
def services_file(tmp_path, fk) -> Path:
    path = tmp_path / "services.json"
    path.write_text(json.dumps([
        {"name": "alpha", "module": "tm_fake_svc", "port": fk.free_port()},
        {"name": "beta", "module": "tm_fake_svc", "port": fk.free_port()},
        {"name": "ghost", "module": "tm_no_such_service", "port": fk.free_port()},
    ]))
    return path


def test_up_status_down_with_embedded_redis(tmp_path, fk, services_file):
    """Detached `tm up` → `tm status` (table and JSON) → kill -9 → restart → `tm down`."""
    env = _clean_env(tmp_path, TM_SERVICES_FILE=str(services_file), **fk.env())
    try:
        up = tm(["up", "--grace-s", "3"], env)
        assert up.returncode == 0, up.stderr
        assert "skip ghost: module tm_no_such_service is not installed" in up.stderr
        state_file = tmp_path / "tm" / "supervisor.json"
        state = json.loads(state_file.read_text())
        assert set(state["processes"]) == {"alpha", "beta"}
        sup_pid = state["supervisor_pid"]

        def rows():
            p = tm(["status", "--json"], env)
            rows = {r["name"]: r for r in json.loads(p.stdout)}
            assert p.returncode == (0 if all(r["ready"] for r in rows.values()) else 1), p.stderr
            return rows

        fk.wait(lambda: all(r["up"] for r in rows().values()), what="both services up")
        r = rows()["alpha"]
        assert (r["lag"], r["pending"], r["restarts"]) == (3, 1, 0)
        assert r["handled"] >= 1 and r["last_event"].startswith("bar.closed")

        # Every service got the shared embedded Redis, the SQLite URL and its own name.
        redis_rec = json.loads((tmp_path / "tm" / "redis.json").read_text())
        doc = fk.status(state["processes"]["beta"]["port"])
        assert doc["env"]["TM_REDIS_URL"] == redis_rec["url"]
        assert doc["env"]["TM_DATABASE_URL"].startswith("sqlite+aiosqlite:///")
        assert doc["env"]["TM_SERVICE_NAME"] == "beta"
        assert (tmp_path / "tm" / "trade_matrix.db").exists()  # migrated before start

        table = tm(["status"], env)
        assert table.returncode == 0 and "alpha" in table.stdout and "ready" in table.stdout
        assert "2/2 ready" in table.stdout

        again = tm(["up"], env)
        assert again.returncode == 1
        assert_one_line_error(again, "a supervisor is already running")

        os.kill(state["processes"]["alpha"]["pid"], signal.SIGKILL)
        fk.wait(lambda: rows()["alpha"]["restarts"] == 1 and rows()["alpha"]["up"],
                what="alpha restarted and up")

        pids = [p["pid"] for p in json.loads(state_file.read_text())["processes"].values()]
        down = tm(["down"], env)
        assert down.returncode == 0, down.stderr
        assert "stopped 2 service(s)" in down.stdout
        assert "embedded Redis stopped" in down.stdout       # tm down stops it too
        for pid in [sup_pid, *pids]:
            assert not fk.alive(pid), f"pid {pid} survived tm down"
        assert not state_file.exists()
        assert tm(["down"], env).stdout.strip() == "tm is not running"
    finally:
        tm(["down", "--redis"], env)
    assert not fk.alive(redis_rec["pid"])


def test_down_cleans_up_after_a_killed_supervisor(tmp_path, fk, services_file):
    """kill -9 of the supervisor orphans its services; `tm down` still stops them."""
    env = _clean_env(tmp_path, TM_SERVICES_FILE=str(services_file), **fk.env())
    try:
        assert tm(["up", "--services", "alpha"], env).returncode == 0
        state = json.loads((tmp_path / "tm" / "supervisor.json").read_text())
        child = state["processes"]["alpha"]["pid"]
        fk.wait(lambda: fk.status(state["processes"]["alpha"]["port"]), what="alpha up")
        os.kill(state["supervisor_pid"], signal.SIGKILL)
        fk.wait(lambda: not fk.alive(state["supervisor_pid"]), what="supervisor dead")
        assert fk.alive(child)
        down = tm(["down"], env)
        assert down.returncode == 0, down.stderr
        assert not fk.alive(child)
        up = tm(["up", "--services", "alpha"], env)    # the stale lock/state do not block
        assert up.returncode == 0, up.stderr
    finally:
        tm(["down", "--redis"], env)


def test_each_process_gets_only_its_own_variables(tmp_path, fk):
    """``tm up`` end to end: the process run as the executor sees the Bybit keys; the one run as
    the signal service does not, nor a foreign credential, nor a test variable; a variable no
    service reads is named on the terminal."""
    table = tmp_path / "services.json"
    table.write_text(json.dumps([
        {"name": "executor", "module": "tm_fake_svc", "port": fk.free_port()},
        {"name": "signal", "module": "tm_fake_svc", "port": fk.free_port()}]))
    env = _clean_env(tmp_path, TM_SERVICES_FILE=str(table), **fk.env(),
                     TM_EXECUTOR_BYBIT_API_KEY="SECk-1", TM_EXECUTOR_BYBIT_API_SECRET="SECs-2",
                     TM_SIGNAL_DVOL_MAX_AGE_S="100", TM_TEST_ANYTHING="1", TM_SYMBOLZ="x",
                     FOREIGN_API_TOKEN="SECf-3")
    try:
        up = tm(["up", "--grace-s", "3"], env)
        assert up.returncode == 0, up.stderr
        assert "warning: no service started reads TM_SYMBOLZ" in up.stderr, up.stderr
        state = json.loads((tmp_path / "tm" / "supervisor.json").read_text())
        ports = {n: p["port"] for n, p in state["processes"].items()}
        names = {n: set(fk.wait(lambda p=p: fk.status(p), what=n)["env_names"])
                 for n, p in ports.items()}
        bybit = {"TM_EXECUTOR_BYBIT_API_KEY", "TM_EXECUTOR_BYBIT_API_SECRET"}
        assert bybit <= names["executor"] and not bybit & names["signal"]
        assert "TM_SIGNAL_DVOL_MAX_AGE_S" in names["signal"] - names["executor"]
        for n, seen in names.items():
            assert not {"FOREIGN_API_TOKEN", "TM_TEST_ANYTHING", "TM_SYMBOLZ",
                        "TM_SERVICES_FILE"} & seen, (n, seen)
            assert {"PATH", "PYTHONPATH", "TM_REDIS_URL", "TM_DATA_DIR"} <= seen, (n, seen)
    finally:
        tm(["down", "--redis"], env)
