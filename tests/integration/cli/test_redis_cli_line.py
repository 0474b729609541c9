"""``tm`` prints a ready-to-paste ``redis-cli`` line for the Redis and namespace a run writes
to (``tm up``, ``tm status``; ``tm demo`` in the e2e test): run as printed, it reads an entry
of the stream. A password is never printed: the line reads it from a file or asks for it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import redis
from tm_app.redis_cli import redis_cli_line

TM = [sys.executable, "-m", "tm_app.stack.main"]


def _env(tmp_path: Path, fk, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(TM_DATA_DIR=str(tmp_path / "tm"), **fk.env(), **extra)
    return env


def tm(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(TM + args, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def _paste(line: str, env: dict[str, str] | None = None) -> str:
    """Run ``line`` as a user pasting it into a shell would."""
    p = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=20,
                       env=env, stdin=subprocess.DEVNULL, check=False)
    assert p.returncode == 0, (line, p.stdout, p.stderr)
    return p.stdout


def _embedded(tmp_path: Path, port: int) -> redis.Redis:
    """The embedded server as its ``tm-admin`` user (its default user is disabled)."""
    password = (tmp_path / "tm" / "redis-admin-password").read_text().strip()
    return redis.Redis(port=port, username="tm-admin", password=password)


def _hint(stdout: str) -> str:
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith("streams: ")]
    return line.removeprefix("streams: ")


def test_tm_up_and_status_print_a_line_that_reads_the_embedded_redis(tmp_path, fk):
    services = tmp_path / "services.json"
    services.write_text(json.dumps([{"name": "alpha", "module": "tm_fake_svc",
                                     "port": fk.free_port()}]))
    env = _env(tmp_path, fk, TM_SERVICES_FILE=str(services))
    try:
        up = tm(["up", "--grace-s", "3"], env)
        assert up.returncode == 0, up.stderr
        line = _hint(up.stdout)
        port = json.loads((tmp_path / "tm" / "redis.json").read_text())["port"]
        assert f"-p {port} " in line and "tm:md.bar" in line, line
        marker = uuid.uuid4().hex
        r = _embedded(tmp_path, port)
        r.xadd("tm:md.bar", {"type": "bar.closed", "marker": marker})
        assert marker in _paste(line)                     # the embedded server, not 6379
        password = (tmp_path / "tm" / "redis-admin-password").read_text().strip()
        assert password not in line and "redis-admin-password" in line   # read, never shown
        fk.wait(lambda: tm(["status"], env).stdout.count("streams: ") == 1, what="status up")
        assert _hint(tm(["status"], env).stdout) == line
        assert json.loads(tm(["up", "--json"], env).stdout or "{}") == {}   # one supervisor
    finally:
        tm(["down"], env)


def test_tm_demo_prints_at_its_start_a_line_that_reads_its_run(tmp_path, fk):
    """The real ``tm demo`` command with fake services (tm_fake_demo): the line it prints at the
    start reads the run's namespace on the embedded Redis while the run goes on."""
    env = _env(tmp_path, fk)
    log = tmp_path / "demo.out"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tm_fake_demo", "--start", "2025-01-01",
                                 "--end", "2025-01-10"], env=env, cwd=tmp_path, text=True,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def printed() -> str | None:
            assert proc.poll() is None, log.read_text()
            found = [ln for ln in log.read_text().splitlines()
                     if ln.startswith("streams, while it runs: ")]
            return found[0].removeprefix("streams, while it runs: ") if found else None
        line = fk.wait(printed, timeout_s=120, what="the demo's redis-cli line")
        ns = re.search(r"XREVRANGE (tmrun:[0-9a-f]{8}:)md\.bar", line)
        assert ns, line
        port = json.loads((tmp_path / "tm" / "redis.json").read_text())["port"]
        assert f"-p {port} " in line
        _embedded(tmp_path, port).xadd(f"{ns.group(1)}md.bar", {"marker": "demo-entry"})
        assert "demo-entry" in _paste(line)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        tm(["down"], env)


def test_a_password_is_read_from_a_file_never_printed(redis_url, namespace, tmp_path):
    user, secret = f"tm-cli-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser(user, enabled=True, passwords=[f"+{secret}"],
                      keys=[f"{namespace}*"], commands=["+xrevrange", "+ping", "+select"])
    try:
        admin.xadd(f"{namespace}md.bar", {"marker": "seen"})
        host_port, _, db = redis_url.split("://", 1)[1].partition("/")
        url = f"redis://{user}:{secret}@{host_port.split('@')[-1]}/{db or 0}"   # the test's db
        asked = redis_cli_line(url, namespace)
        assert secret not in asked and "--askpass" in asked and f"--user {user}" in asked
        pw = tmp_path / "redis-password"
        pw.write_text(secret)
        line = redis_cli_line(url, namespace, password_file=pw)
        assert secret not in line and str(pw) in line
        assert "seen" in _paste(line)
        pw.write_text("wrong")
        p = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=20,
                           check=False)
        assert "WRONGPASS" in p.stdout + p.stderr          # the file is what authenticates
    finally:
        admin.acl_deluser(user)
