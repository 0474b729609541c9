"""A CLI that never strands you, on real processes: a port clash is one line before anything
starts; `tm status` says what is not ready and why (and exits 1); a crash loop shows the child's
last line; SIGTERM/SIGHUP stop every child, and `tm down` stops a running demo and the embedded
Redis; `tm breaker`/`tm kill` find the stack's admin token file and ports on their own."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

TM = [sys.executable, "-m", "tm_app.stack.main"]


def _env(tmp_path: Path, fk, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(TM_DATA_DIR=str(tmp_path / "tm"), COLUMNS="80", **fk.env(), **extra)
    return env


def tm(args: list[str], env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(TM + args, env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=False)


def _table(tmp_path: Path, fk, names: list[str], **config: dict) -> Path:
    """A services file of fake services; ``config[name]`` goes to that fake's config file."""
    (tmp_path / "tm").mkdir(exist_ok=True)
    for name, cfg in config.items():
        (tmp_path / "tm" / f"fake-{name}.json").write_text(json.dumps(cfg))
    path = tmp_path / "services.json"
    path.write_text(json.dumps([{"name": n, "module": "tm_fake_svc", "port": fk.free_port()}
                                for n in names]))
    return path


def _state(tmp_path: Path, name: str = "supervisor.json") -> dict | None:
    try:
        return json.loads((tmp_path / "tm" / name).read_text())
    except (OSError, ValueError):
        return None


def test_a_port_clash_is_one_line_naming_the_owner_and_starts_nothing(tmp_path, fk):
    table = _table(tmp_path, fk, ["alpha", "beta"])
    taken = json.loads(table.read_text())[1]["port"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        p = tm(["up"], _env(tmp_path, fk, TM_SERVICES_FILE=str(table)))
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith(f"error: port {taken} (beta) is in use by pid {os.getpid()} ("), lines
    assert "--port-offset" in lines[0]
    # nothing was started: no supervisor, no embedded Redis, no admin token
    assert not (tmp_path / "tm" / "supervisor.json").exists()
    assert not (tmp_path / "tm" / "redis.json").exists()
    assert not (tmp_path / "tm" / "admin-token").exists()


def test_status_ready_column_reasons_summary_and_exit_status(tmp_path, fk):
    crash = "OSError: [Errno 98] error while attempting to bind: address already in use"
    table = _table(tmp_path, fk, ["signal", "risk", "executor"],
                   signal={"FAKE_NOT_READY": "model:no production signal model"},
                   risk={"FAKE_EXTRA": json.dumps({"breaker": {"state": "CLOSED"}})},
                   executor={"FAKE_CRASH": crash})
    env = _env(tmp_path, fk, TM_SERVICES_FILE=str(table))
    try:
        assert tm(["up", "--grace-s", "3"], env).returncode == 0
        fk.wait(lambda: (_state(tmp_path) or {}).get("processes", {}).get("executor", {})
                .get("restarts", 0) >= 1, what="executor restarted")
        fk.wait(lambda: fk.status(_state(tmp_path)["processes"]["risk"]["port"]), what="risk up")
        fk.wait(lambda: fk.status(_state(tmp_path)["processes"]["signal"]["port"]), what="sig up")
        p = tm(["status"], env)
        assert p.returncode == 1, p.stdout + p.stderr        # something is not ready
        out = " ".join(p.stdout.split())
        assert max(len(ln) for ln in p.stdout.splitlines()) <= 80, p.stdout
        assert "signal not ready: model: no production signal model" in out, p.stdout
        assert "executor not ready: " in out and f"exited with 3: {crash}" in out, p.stdout
        assert ("1/3 ready; trading FLAT: no production signal model; not ready: signal, "
                "executor") in out, p.stdout
        assert p.stdout.lstrip().startswith("1/3 ready; trading FLAT"), p.stdout   # at the top
        j = tm(["status", "--json"], env)
        assert j.returncode == 1
        rows = {r["name"]: r for r in json.loads(j.stdout)}
        assert rows["risk"]["ready"] and rows["risk"]["reason"] is None
        assert rows["signal"]["up"] and not rows["signal"]["ready"]
        assert rows["signal"]["reason"] == "model: no production signal model"
        assert rows["executor"]["last_exit"] == f"exited with 3: {crash}"
        # the supervisor's own log says it too, once per exit
        log = (tmp_path / "tm" / "logs" / "supervisor.log").read_text()
        assert f"executor exited with 3: {crash}; restart 1 in" in log, log
        # all ready: exit 0
        ok = tm(["status", "--services", "risk"], env)
        assert ok.returncode == 0 and "1/1 ready" in ok.stdout, ok.stdout + ok.stderr
    finally:
        tm(["down"], env)


def test_breaker_and_kill_use_the_stacks_token_file_and_port_offset(tmp_path, fk):
    table = _table(tmp_path, fk, ["risk", "signal"])
    base = {r["name"]: r["port"] for r in json.loads(table.read_text())}
    offset = 3
    env = _env(tmp_path, fk, TM_SERVICES_FILE=str(table))
    try:
        up = tm(["up", "--grace-s", "3", "--port-offset", str(offset), "--json"], env)
        assert up.returncode == 0, up.stderr
        started = json.loads(up.stdout)
        assert started["port_offset"] == offset
        assert started["processes"]["risk"]["port"] == base["risk"] + offset
        token_file = tmp_path / "tm" / "admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        tokens = json.loads(token_file.read_text())       # one file, a token per service
        token = tokens["risk"]
        assert token and token not in up.stdout + up.stderr
        state = _state(tmp_path)
        assert state["admin_token_file"] == str(token_file) and state["port_offset"] == offset
        names = {n: set(fk.wait(lambda p=p: fk.status(p["port"]), what=n)["env_names"])
                 for n, p in state["processes"].items()}
        assert "TM_RISK_ADMIN_TOKEN" in names["risk"]
        assert not {n for n in names["signal"] if "ADMIN_TOKEN" in n}
        # no TM_ADMIN_TOKEN exported, no --url: the stack's file and its risk port
        trip = tm(["breaker", "trip", "--reason", "drill", "--json"], env)
        assert trip.returncode == 0, trip.stderr
        assert json.loads(trip.stdout) == {"action": "trip", "reason": "drill", "service": "risk"}
        kill = tm(["kill", "--reason", "drill"], env)
        assert kill.returncode == 0 and "'kill'" in kill.stdout, kill.stdout + kill.stderr
        assert token not in trip.stdout + trip.stderr + kill.stdout + kill.stderr
        # a token file others can read is refused, in one line
        token_file.chmod(0o644)
        bad = tm(["breaker", "trip"], env)
        assert bad.returncode == 2 and "chmod 600" in bad.stderr and token not in bad.stderr
        token_file.chmod(0o600)
    finally:
        tm(["down"], env)


def _wait_state(tmp_path: Path, name: str, procs: int, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        doc = _state(tmp_path, name)
        if doc and len(doc["processes"]) == procs and all(p["pid"] for p in doc["processes"].values()):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"no {name} with {procs} running processes")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_on_foreground_up_stops_every_child(tmp_path, fk, sig):
    table = _table(tmp_path, fk, ["alpha", "beta"])
    env = _env(tmp_path, fk, TM_SERVICES_FILE=str(table))
    proc = subprocess.Popen([*TM, "up", "--foreground", "--grace-s", "3"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        state = _wait_state(tmp_path, "supervisor.json", 2)
        pids = [p["pid"] for p in state["processes"].values()]
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        for pid in pids:
            assert not fk.alive(pid), f"{sig.name}: pid {pid} survived"
        assert _state(tmp_path) is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        tm(["down"], env)


def _start_demo(tmp_path: Path, fk) -> tuple[subprocess.Popen, dict, dict]:
    """``tm demo`` (fake services, see tm_fake_demo) running; its state and Redis record."""
    env = _env(tmp_path, fk)
    proc = subprocess.Popen([sys.executable, "-m", "tm_fake_demo", "--start", "2025-01-01",
                             "--end", "2025-01-10"], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        ingest = _wait_state(tmp_path, "mesh/mesh-ingest.json", 1, timeout_s=120)
    except AssertionError:
        proc.kill()
        out, err = proc.communicate(10)
        raise AssertionError(f"the demo did not start: {out}\n{err}") from None
    state = _state(tmp_path, "mesh/mesh.json")
    state["processes"].update(ingest["processes"])
    redis = json.loads((tmp_path / "tm" / "redis.json").read_text())
    assert fk.alive(redis["pid"]) and state["supervisor_pid"] == proc.pid
    return proc, state, redis


def _assert_all_gone(fk, state: dict, redis: dict, tmp_path: Path) -> None:
    for name, p in state["processes"].items():
        fk.wait(lambda pid=p["pid"]: not fk.alive(pid), timeout_s=20, what=f"{name} stopped")
    fk.wait(lambda: not fk.alive(redis["pid"]), timeout_s=20, what="embedded Redis stopped")
    assert not (tmp_path / "tm" / "redis.json").exists()
    assert _state(tmp_path, "mesh/mesh.json") is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_on_demo_stops_every_child_and_the_embedded_redis(tmp_path, fk, sig):
    proc, state, redis = _start_demo(tmp_path, fk)
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1
        assert f"error: stopped by {sig.name}" in err and "Traceback" not in err, err
        _assert_all_gone(fk, state, redis, tmp_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        tm(["down"], _env(tmp_path, fk))


def test_down_stops_a_running_demo_and_the_embedded_redis(tmp_path, fk):
    proc, state, redis = _start_demo(tmp_path, fk)
    try:
        down = tm(["down"], _env(tmp_path, fk))
        assert down.returncode == 0, down.stderr
        assert f"stopped tm demo (pid {proc.pid}) and its 4 service(s)" in down.stdout, down.stdout
        assert "embedded Redis stopped" in down.stdout
        proc.communicate(timeout=60)
        _assert_all_gone(fk, state, redis, tmp_path)
        assert tm(["down"], _env(tmp_path, fk)).stdout.strip() == "tm is not running"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_stopped_demo_leaves_the_redis_that_tm_up_uses(tmp_path, fk):
    """The embedded Redis is shared: a demo stopped by SIGTERM does not stop it under a running
    `tm up` (whose supervisor holds it); `tm down` then stops both."""
    table = _table(tmp_path, fk, ["alpha"])
    env = _env(tmp_path, fk, TM_SERVICES_FILE=str(table))
    try:
        assert tm(["up", "--grace-s", "3"], env).returncode == 0
        proc, _, redis = _start_demo(tmp_path, fk)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 1
        time.sleep(0.5)
        assert fk.alive(redis["pid"]), "the demo stopped the Redis that tm up still uses"
        down = tm(["down"], env)
        assert "stopped 1 service(s)" in down.stdout and "embedded Redis stopped" in down.stdout
        fk.wait(lambda: not fk.alive(redis["pid"]), timeout_s=20, what="Redis stopped")
    finally:
        tm(["down"], env)
