"""Redis passwords, ACL users and TLS, and PostgreSQL TLS, all through configuration.

- The bus and a service process work with ``redis://user:password@host:port/0`` (an ACL user, and
  the default user of ``requirepass``), including an ACL user confined to the namespace's keys.
- A wrong password is a clear error (``AuthenticationError: invalid username-password pair``) in
  the exception, the logs, ``/readyz`` and ``/status``, and no form of either password appears.
- TLS: ``rediss://`` to a TLS-only ``redis-server`` that requires client certificates, with the CA
  and client certificate given either as settings (``TM_REDIS_TLS_CA_FILE``,
  ``TM_REDIS_TLS_CERT_FILE``, ``TM_REDIS_TLS_KEY_FILE``) or in the URL's query string (redis-py's
  ``ssl_ca_certs``/``ssl_certfile``/``ssl_keyfile``), end to end in a service process; without the
  CA, without a client certificate, or with ``redis://`` the error says what is wrong.
- PostgreSQL: ``?sslmode=require`` (libpq's spelling) and ``?ssl=require`` (asyncpg's) give an
  encrypted session to a server with ``ssl=on``; ``verify-full`` checks the server against the CA,
  given as ``PGSSLROOTCERT`` or, the documented production setting, as ``sslrootcert`` in the URL.
  (The mesh in test_secrets_never_leak runs every service with ``?sslmode=require``.)
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

import pytest
from tm_common.bus.protocol import Output, TransportError
from tm_common.bus.redis import RedisStreamsBus
from tm_common.errors import ConfigError
from tm_common.instruments import DEFAULT_INSTRUMENTS
from tm_common.testing.factories import bar_event

from .conftest import ACL_USER, SECRETS, WRONG_REDIS_PASSWORD, WRONG_TOKEN, enc, leaks

ADMIN = SECRETS["admin_token"]
REDIS_SECRETS = {"acl": SECRETS["redis_acl_password"], "default": SECRETS["redis_password"],
                 "wrong": WRONG_REDIS_PASSWORD}


async def _round_trip(bus: RedisStreamsBus, tag: str) -> list:
    """Publish, read in a group, commit an output atomically with the ack, read it back."""
    await bus.ensure_group("in", "g")
    await bus.publish("in", bar_event("BTCUSDT", 1))
    (d,) = await bus.read("g", "c", ["in"], pending=False, count=10, block_ms=1000)
    await bus.commit("g", "c", d, [Output("out", bar_event("ETHUSDT", 2))],
                     state=(bus.key(f"state:{tag}"), b"s"))
    assert await bus.ping() is True
    assert [g["pending"] for g in await bus.group_info("in")] == [0]
    return await bus.entries("out")


def _run(coro_fn, *buses: RedisStreamsBus):
    async def go():
        try:
            return await coro_fn()
        finally:
            for b in buses:
                await b.close()
    return asyncio.run(go())


# -- password and ACL ----------------------------------------------------------------------------
def test_bus_works_with_acl_user_and_requirepass_urls(secure_redis):
    for user, who in ((ACL_USER, ACL_USER), (None, "default")):
        bus = RedisStreamsBus(secure_redis.url(user=user), prefix=f"tmsec:acl-{who}:")

        async def check(bus=bus, who=who):
            whoami = await bus.r.acl_whoami()
            assert (whoami.decode() if isinstance(whoami, bytes) else whoami) == who
            return await _round_trip(bus, who)
        assert len(_run(check, bus)) == 1


def test_acl_user_confined_to_its_namespace(secure_redis):
    """Several environments can share one Redis: a user whose ACL allows only ``tmsec:env1:*``
    runs the whole bus protocol (streams, groups, the commit script, state keys) there, and is
    refused anywhere else."""
    import redis

    admin = redis.Redis.from_url(secure_redis.url(user=None))
    pw = "SECenv1-user-pw"
    admin.acl_setuser("env1", enabled=True, passwords=[f"+{pw}"], keys=["tmsec:env1:*"],
                      channels=["*"], commands=["+@all", "-@admin", "-@dangerous"])
    admin.close()
    url = f"redis://env1:{enc(pw)}@127.0.0.1:{secure_redis.port}/0"
    bus = RedisStreamsBus(url, prefix="tmsec:env1:")
    other = RedisStreamsBus(url, prefix="tmsec:env2:")

    async def check():
        out = await _round_trip(bus, "env1")
        with pytest.raises(Exception, match="no permissions") as e:
            await other.publish("in", bar_event())
        assert not leaks(str(e.value), {"pw": pw})
        return out
    assert len(_run(check, bus, other)) == 1


@pytest.mark.parametrize("user,password,why", [
    (ACL_USER, WRONG_REDIS_PASSWORD, "invalid username-password pair"),
    (None, WRONG_REDIS_PASSWORD, "invalid username-password pair"),
    ("nobody", SECRETS["redis_acl_password"], "invalid username-password pair"),
    (None, "", "AuthenticationError"),            # no password at all
])
def test_wrong_credentials_are_a_clear_redacted_error(secure_redis, user, password, why):
    url = secure_redis.url(user=user, password=password)
    if password == "":
        url = f"redis://127.0.0.1:{secure_redis.port}/0"
    bus = RedisStreamsBus(url, prefix="tmsec:wrong:")

    async def check():
        errors = []
        for call in (bus.ping, lambda: bus.publish("x", bar_event()),
                     lambda: bus.ensure_group("x", "g")):
            with pytest.raises(TransportError) as e:
                await call()
            errors.append(str(e.value))
        return errors
    for message in _run(check, bus):
        assert message.startswith("redis: AuthenticationError") and why in message, message
        assert not leaks(message, REDIS_SECRETS), leaks(message, REDIS_SECRETS)


def _risk_env(url: str, namespace: str, **extra: str) -> dict[str, str]:
    # its lot filters: a recorded instruments-info answer (no venue runs here)
    recorded = Path(tempfile.gettempdir()) / f"tm-risk-instruments-{os.getpid()}.json"
    recorded.write_text(json.dumps({"retCode": 0, "result": {"list": [
        s.info() for s in DEFAULT_INSTRUMENTS.values()]}}))
    return {"TM_RISK_INSTRUMENTS_FILE": str(recorded), "TM_REDIS_URL": url, "TM_NAMESPACE": namespace, "TM_ADMIN_TOKEN": ADMIN,
            "TM_RISK_STALE_CHECK_INTERVAL_S": "0", "TM_READ_BLOCK_MS": "100",
            "TM_LAG_POLL_INTERVAL_S": "0.3", "TM_RISK_ADMIN_WAIT_S": "5", **extra}


def test_service_with_a_wrong_redis_password_says_why(secure_redis, service):
    svc = service("risk-wrong-pw", "tm_risk",
                  _risk_env(secure_redis.url(password=WRONG_REDIS_PASSWORD), "tmsec:wrongpw:"))
    svc.wait_http("/readyz", status=503, timeout_s=90)
    ready = svc.get("/readyz").json()
    assert ready["not_ready"] == ["redis"], ready
    assert ready["checks"]["redis"] == ("error: TransportError: redis: AuthenticationError: "
                                        "invalid username-password pair or user is disabled."), ready
    status = svc.get("/status").json()
    assert "AuthenticationError" in (status["lag_error"] or ""), status
    svc.stop()
    logs = svc.logs()
    assert "bus.transport_error" in logs and "invalid username-password pair" in logs
    for text in (logs, str(ready), str(status)):
        assert not leaks(text, REDIS_SECRETS), leaks(text, REDIS_SECRETS)


# -- TLS -----------------------------------------------------------------------------------------
def _tls_settings(tls_redis, certs, **over):
    from tm_common.settings import CommonSettings

    kw = {"redis_url": tls_redis.url(), "namespace": "tmsec:tls:",
          "redis_tls_ca_file": certs["ca"], "redis_tls_cert_file": certs["client_crt"],
          "redis_tls_key_file": certs["client_key"], **over}
    return CommonSettings(**kw)


def test_tls_settings_reach_the_connection_pool(certs):
    """Without a server: the settings (and the URL's query options) end up in redis-py's pool as
    an SSL connection with the CA, the client certificate and the credentials."""
    from redis.asyncio.connection import SSLConnection
    from tm_common.service.wiring import make_bus
    from tm_common.settings import CommonSettings

    url = f"rediss://{ACL_USER}:{enc(SECRETS['redis_acl_password'])}@redis.example:6380/2"
    by_settings = make_bus(CommonSettings(redis_url=url, redis_tls_ca_file=certs["ca"],
                                          redis_tls_cert_file=certs["client_crt"],
                                          redis_tls_key_file=certs["client_key"]))
    by_url = RedisStreamsBus(url + f"?ssl_ca_certs={certs['ca']}&ssl_cert_reqs=required")
    for bus in (by_settings, by_url):
        pool = bus.r.connection_pool
        kw = pool.connection_kwargs
        assert pool.connection_class is SSLConnection
        assert (kw["host"], kw["port"], kw["db"], kw["username"], kw["password"]) == \
            ("redis.example", 6380, 2, ACL_USER, SECRETS["redis_acl_password"])
        assert kw["ssl_ca_certs"] == str(certs["ca"])
    assert by_settings.r.connection_pool.connection_kwargs["ssl_certfile"] == str(certs["client_crt"])
    assert by_settings.r.connection_pool.connection_kwargs["ssl_keyfile"] == str(certs["client_key"])
    asyncio.run(by_settings.close())
    asyncio.run(by_url.close())


def test_rediss_with_tls_settings_or_url_options(tls_redis, certs):
    from tm_common.service.wiring import make_bus

    by_settings = make_bus(_tls_settings(tls_redis, certs))
    query = (f"?ssl_ca_certs={certs['ca']}&ssl_certfile={certs['client_crt']}"
             f"&ssl_keyfile={certs['client_key']}")
    by_url = RedisStreamsBus(tls_redis.url(query=query), prefix="tmsec:tls-url:")

    async def check():
        return [await _round_trip(by_settings, "settings"), await _round_trip(by_url, "url")]
    assert [len(x) for x in _run(check, by_settings, by_url)] == [1, 1]


def test_tls_misconfiguration_is_a_clear_error(tls_redis, certs):
    from tm_common.service.wiring import make_bus

    cases = {
        "certificate verify failed": make_bus(_tls_settings(tls_redis, certs, redis_tls_ca_file=None)),
        # the server requires a client certificate (tls-auth-clients yes)
        "certificate required": make_bus(_tls_settings(tls_redis, certs, redis_tls_cert_file=None,
                                   redis_tls_key_file=None)),
        "Connection reset": RedisStreamsBus(tls_redis.url().replace("rediss://", "redis://"),
                                      prefix="tmsec:tls:", socket_timeout_s=3),
    }

    async def check():
        out = {}
        for want, bus in cases.items():
            try:
                with pytest.raises(TransportError) as e:
                    await asyncio.wait_for(bus.publish("x", bar_event()), 20)
            finally:
                await bus.close()
            out[want] = str(e.value)
        return out
    # TLS 1.3: the server's "certificate required" alert may race the client's first read,
    # which then sees the reset instead; either way a clear, classified transport error
    accept = {"certificate required": ("certificate required", "Connection reset", "EOF")}
    for want, message in asyncio.run(check()).items():
        assert message.startswith("redis: "), message
        assert any(w in message for w in accept.get(want, (want,))), message
        assert not leaks(message, REDIS_SECRETS), message
    with pytest.raises(ConfigError, match="not a rediss:// URL"):
        make_bus(_tls_settings(tls_redis, certs, redis_url=tls_redis.url().replace("rediss", "redis")))


def test_service_process_over_tls_with_an_acl_user(tls_redis, certs, service):
    ns = "tmsec:tls-svc:"
    svc = service("risk-tls", "tm_risk", _risk_env(
        tls_redis.url(), ns, TM_REDIS_TLS_CA_FILE=str(certs["ca"]),
        TM_REDIS_TLS_CERT_FILE=str(certs["client_crt"]),
        TM_REDIS_TLS_KEY_FILE=str(certs["client_key"])))
    svc.wait_http("/readyz", timeout_s=90)
    # Consume → handle → publish + ack over TLS: a manual trip goes through risk.command.
    r = svc.post("/breaker/trip", token=ADMIN, json={"reason": "tls drill"})
    assert r.status_code == 200 and r.json()["state"] == "OPEN", r.text
    assert svc.post("/breaker/reset", header=f"Bearer {WRONG_TOKEN}").status_code == 401
    from tm_common.service.wiring import make_bus

    bus = make_bus(_tls_settings(tls_redis, certs, namespace=ns))
    breaker = _run(lambda: bus.entries("risk.breaker"), bus)
    assert len(breaker) == 1 and '"to_state":"OPEN"' in breaker[0][1]["body"]
    metrics, status = svc.get("/metrics").text, svc.get("/status").text
    svc.stop()
    for text in (svc.logs(), metrics, status):
        assert not leaks(text, {**REDIS_SECRETS, "admin": ADMIN}), leaks(text)


# -- PostgreSQL TLS ------------------------------------------------------------------------------
def _pg_session_ssl(url: str) -> bool:
    """Connect with ``make_engine(url)``: whether the session is encrypted (pg_stat_ssl)."""
    import sqlalchemy as sa
    from tm_common.db import make_engine

    async def go() -> bool:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return bool((await conn.execute(sa.text(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))).scalar())
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_postgres_ssl_options(private_pg, certs, monkeypatch):
    from tm_common.db.migrate import migrate

    session = _pg_session_ssl
    assert session(private_pg.url(query="?sslmode=require")) is True
    assert session(private_pg.url(query="?ssl=require")) is True
    assert session(private_pg.url(query="?sslmode=disable")) is False
    migrate(private_pg.url(query="?sslmode=require"))          # what every service runs first

    with pytest.raises(Exception) as e:                       # no CA to verify the server with
        session(private_pg.url(query="?sslmode=verify-full"))
    assert "root certificate" in str(e.value) and not leaks(str(e.value)), str(e.value)
    monkeypatch.setenv("PGSSLROOTCERT", str(certs["ca"]))      # libpq's variable, read by asyncpg
    assert session(private_pg.url(query="?sslmode=verify-full")) is True

    with pytest.raises(Exception) as e:
        session(private_pg.url(password="SECwrong-db-pw"))
    assert "password authentication failed" in str(e.value), str(e.value)
    assert not leaks(str(e.value), {**SECRETS, "wrong": "SECwrong-db-pw"}), str(e.value)


def test_postgres_verify_full_with_the_ca_file_in_the_url(private_pg, certs, tmp_path,
                                                           monkeypatch):
    """The documented production setting: ``?sslmode=verify-full&sslrootcert=<CA file>`` (the
    CA mounted from a Secret) connects and migrates; a server whose certificate another CA
    signed is refused; no environment variable is needed."""
    import subprocess

    from tm_common.db.migrate import migrate

    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))              # no ~/.postgresql/root.crt either
    query = f"?sslmode=verify-full&sslrootcert={certs['ca']}"
    assert _pg_session_ssl(private_pg.url(query=query)) is True
    migrate(private_pg.url(query=query))
    assert _pg_session_ssl(private_pg.url(query=query.replace("verify-full", "verify-ca")))

    other = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(tmp_path / "other-ca.key"), "-out", str(other), "-days", "1", "-subj",
                    "/CN=not-the-db-ca"], check=True, capture_output=True, timeout=60)
    with pytest.raises(Exception) as e:
        _pg_session_ssl(private_pg.url(query=f"?sslmode=verify-full&sslrootcert={other}"))
    assert "certificate verify failed" in str(e.value), str(e.value)
    assert not leaks(str(e.value)), str(e.value)
