"""The embedded Redis of ``tm up``/``tm demo``/``tm paper`` is least-privilege by default (issue 19,
part 1): an ACL file with hashed passwords (0600) loaded with ``--aclfile``, the ``default``
user disabled, no password on a command line, and every child of a supervisor given its own
user's URL, never the admin's."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
from redis.exceptions import NoPermissionError
from tm_app.stack.supervisor import ProcessSpec, Supervisor, child_env
from tm_common.bus import acl
from tm_common.embedded import (
    ACL_FILE,
    ADMIN_PASSWORD_FILE,
    admin_password,
    ensure_embedded_redis,
    read_record,
    stop_embedded_redis,
)
from tm_common.settings import CommonSettings


@pytest.fixture
def settings(tmp_path):
    s = CommonSettings.from_values(data_dir=tmp_path / "tm", redis_url=None)
    yield s
    stop_embedded_redis(s)


def test_embedded_redis_starts_with_acls_and_no_open_door(settings):
    admin_url = ensure_embedded_redis(settings)
    d = Path(settings.data_dir).resolve()
    record = read_record(settings)
    assert record is not None and "@" not in record["url"]
    for name in (ACL_FILE, ADMIN_PASSWORD_FILE):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600, name
    password = admin_password(d)
    text = (d / ACL_FILE).read_text()
    assert password not in text and acl.derive_password(password, "risk") not in text
    assert "user default reset" in text
    cmdline = " ".join(psutil.Process(int(record["pid"])).cmdline())
    assert password not in cmdline and acl.derive_password(password, "risk") not in cmdline
    assert redis.Redis.from_url(admin_url).ping()
    with pytest.raises(redis.AuthenticationError):          # the default user: nothing
        redis.Redis.from_url(record["url"]).xadd("tm:risk.order", {"a": "1"})
    signal = redis.Redis.from_url(ensure_embedded_redis(settings, user="signal"))
    signal.xadd("tm:signal.tl", {"a": "1"})
    with pytest.raises(NoPermissionError):
        signal.xadd("tm:risk.order", {"a": "1"})
    ingest = redis.Redis.from_url(ensure_embedded_redis(settings, user="ingest"))
    ingest.xadd("tmrun:abc:md.bar", {"a": "1"})             # any run's namespace (tm demo)
    with pytest.raises(NoPermissionError):
        ingest.xadd("tmrun:abc:risk.command", {"a": "1"})


def test_a_server_started_before_acls_is_replaced(settings):
    """An embedded server of an older version (no ACL file, open default user) is treated as
    stale: replaced by one with ACLs, so upgrading never leaves the open server running."""
    d = Path(settings.data_dir).resolve()
    d.mkdir(parents=True)
    from tm_common.embedded import _write_record, redis_server_binary
    from tm_common.testing.redis import free_port

    port = free_port()
    subprocess.run([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save",
                    "", "--daemonize", "yes", "--pidfile", str(d / "old.pid"), "--dir", str(d)],
                   check=True, timeout=10)
    for _ in range(100):
        if (d / "old.pid").exists():
            break
        time.sleep(0.05)
    old_pid = int((d / "old.pid").read_text())
    _write_record(d, {"url": f"redis://127.0.0.1:{port}/0", "port": port, "pid": old_pid})
    url = ensure_embedded_redis(settings)
    assert read_record(settings)["pid"] != old_pid
    assert not psutil.pid_exists(old_pid) or \
        psutil.Process(old_pid).status() == psutil.STATUS_ZOMBIE
    assert redis.Redis.from_url(url).ping()


def test_every_child_of_a_supervisor_gets_its_own_user(tmp_path):
    admin = "redis://tm-admin:adm1n-pw@127.0.0.1:7000/0"
    env = child_env("risk", {"TM_REDIS_URL": admin, "X": "1"})
    assert env["TM_REDIS_URL"] == acl.scoped_url(admin, "risk") and "adm1n" not in str(env)
    assert child_env("exchange-sim", {"TM_REDIS_URL": admin})["TM_REDIS_URL"] == \
        "redis://127.0.0.1:7000/0"
    own = "redis://risk:op-pw@redis:6379/0"                  # an operator's URL: as given
    assert child_env("risk", {"TM_REDIS_URL": own})["TM_REDIS_URL"] == own
    # and the supervisor applies it to what it spawns
    out = tmp_path / "env.txt"
    code = f"import os; open({str(out)!r}, 'w').write(os.environ['TM_REDIS_URL'])"
    sup = Supervisor([ProcessSpec("signal", [sys.executable, "-c", code],
                                  env={"TM_REDIS_URL": admin})], base_env={})
    sup.start()
    try:
        for _ in range(200):
            if out.exists() and out.read_text():
                break
            sup.poll()
            time.sleep(0.05)
    finally:
        sup.stop()
    assert out.read_text() == acl.scoped_url(admin, "signal")


def test_a_service_that_starts_the_embedded_redis_itself_connects_as_its_own_user(settings):
    """``python -m tm_signal`` with no TM_REDIS_URL: make_bus starts (or finds) the embedded
    server and connects as ``signal``, not ``tm-admin``; a settings object with no Redis user
    (the CLI's) gets tm-admin."""
    import asyncio

    from tm_common.service.wiring import make_bus

    sig = CommonSettings.from_values(data_dir=settings.data_dir, redis_url=None,
                                     service_name="signal")

    async def go() -> None:
        bus = make_bus(sig)
        try:
            assert bus.r.connection_pool.connection_kwargs["username"] == "signal"
            await bus.publish_raw("signal.tl", {"a": "1"})
            with pytest.raises(Exception, match="(?i)NOPERM|no permissions"):
                await bus.publish_raw("risk.order", {"a": "1"})
        finally:
            await bus.close()
        cli = make_bus(settings)
        try:
            assert cli.r.connection_pool.connection_kwargs["username"] == acl.ADMIN_USER
        finally:
            await cli.close()
    asyncio.run(go())
