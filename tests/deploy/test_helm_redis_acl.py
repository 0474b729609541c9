"""The chart's least-privilege Redis (issue 19, part 1) and per-service admin tokens: each
service connects as its own ACL user (the users of ``tm_common.bus.acl``) with its own password
from the ``trade-matrix-redis`` Secret by default; TLS with a CA (and a client certificate)
mounted from a Secret; each admin token from its own key of ``trade-matrix-admin``. The files an
operator makes that Secret and the Redis ACL from (``python -m tm_app.stack.redis_acl``) load
into a real Redis 7 and let each user in with its own password."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from redis.exceptions import NoPermissionError
from tm_common.bus import streams as st
from tm_common.bus.acl import ACCESS, ADMIN_USER, ALL_USERS
from tm_common.testing.redis import RedisServer

from .test_helm import CHART, VALUES, docs, one, pod_spec, render, values_of

SIGNAL = next(v for v in VALUES if v.stem == "signal")


def _env(objs: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in pod_spec(objs)["containers"][0]["env"]}


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_each_service_is_its_own_acl_user_by_default(deploy_tools, sh, values):
    objs = docs(render(deploy_tools, sh, values))
    env = _env(objs)
    name = values_of(values)["service"]["name"]
    if name == "exchange-sim":                  # no Redis at all: no credentials
        assert "TM_REDIS_PASSWORD" not in env and "@" not in \
            one(objs, "ConfigMap")["data"]["TM_REDIS_URL"]
        return
    user = "trainer" if name == "trainer-rl" else name
    assert user in ACCESS, f"{values.name}: no ACL user {user} in tm_common.bus.acl.ACCESS"
    assert env["TM_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == \
        {"name": "trade-matrix-redis", "key": user}
    assert env["TM_REDIS_URL"]["value"] == f"redis://{user}:$(TM_REDIS_PASSWORD)@redis:6379/0"


def test_tls_with_a_ca_and_a_client_certificate_from_a_secret(deploy_tools, sh):
    objs = docs(render(deploy_tools, sh, SIGNAL, "--set", "redis.tls=true",
                       "--set", "redis.tlsSecret=redis-tls", "--set", "redis.clientCert=true",
                       "--set", "redis.caKey=ca.pem"))
    env, spec = _env(objs), pod_spec(objs)
    assert env["TM_REDIS_URL"]["value"].startswith("rediss://signal:")
    assert env["TM_REDIS_TLS_CA_FILE"]["value"] == "/etc/tm/redis-tls/ca.crt"
    assert env["TM_REDIS_TLS_CERT_FILE"]["value"] == "/etc/tm/redis-tls/tls.crt"
    vol = next(v for v in spec["volumes"] if v["name"] == "redis-tls")
    assert vol["secret"]["secretName"] == "redis-tls"
    assert {"key": "ca.pem", "path": "ca.crt"} in vol["secret"]["items"]
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "redis-tls")
    assert mount["readOnly"] is True and mount["mountPath"] == "/etc/tm/redis-tls"
    ca_only = _env(docs(render(deploy_tools, sh, SIGNAL, "--set", "redis.tls=true",
                               "--set", "redis.tlsSecret=redis-tls")))
    assert "TM_REDIS_TLS_CA_FILE" in ca_only and "TM_REDIS_TLS_CERT_FILE" not in ca_only


def test_tls_variant_passes_kubernetes_validate(deploy_tools, sh):
    text = render(deploy_tools, sh, SIGNAL, "--set", "redis.tls=true", "--set",
                  "redis.tlsSecret=redis-tls", "--set", "redis.clientCert=true")
    v = sh([*deploy_tools.kubernetes_validate, "--strict", "-k", "1.33.0", "-"], input=text)
    assert v.returncode == 0, v.stdout + v.stderr


@pytest.mark.parametrize(("args", "why"), [
    (["--set", "redis.tlsSecret=redis-tls"], "redis.tls is false"),
    (["--set", "redis.user=Not_Valid"], "/redis/user"),
])
def test_bad_redis_values_fail_the_render(deploy_tools, sh, args, why):
    r = sh([deploy_tools.helm, "template", "x", str(CHART), "-f", str(SIGNAL), *args])
    assert r.returncode != 0 and why in r.stderr


def test_user_and_password_key_overrides(deploy_tools, sh):
    env = _env(docs(render(deploy_tools, sh, SIGNAL, "--set", "redis.user=signal-b",
                           "--set", "redis.passwordKey=pw")))
    assert env["TM_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "pw"
    assert env["TM_REDIS_URL"]["value"].startswith("redis://signal-b:")
    objs = docs(render(deploy_tools, sh, SIGNAL, "--set", "redis.existingSecret="))
    assert "TM_REDIS_PASSWORD" not in _env(objs)
    assert one(objs, "ConfigMap")["data"]["TM_REDIS_URL"] == "redis://redis:6379/0"


def test_each_admin_token_from_its_own_key(deploy_tools, sh):
    """risk's token reaches risk only; the simulator's reaches the simulator and ingest, which
    drives its clock; no pod gets the shared TM_ADMIN_TOKEN."""
    refs = {}
    for values in VALUES:
        env = _env(docs(render(deploy_tools, sh, values)))
        assert "TM_ADMIN_TOKEN" not in env, values.name
        refs[values.stem] = {n: e["valueFrom"]["secretKeyRef"] for n, e in env.items()
                             if n.endswith("ADMIN_TOKEN")}
    assert refs["risk"] == {"TM_RISK_ADMIN_TOKEN": {"name": "trade-matrix-admin", "key": "risk"}}
    sim = {"name": "trade-matrix-admin", "key": "exchange-sim"}
    assert refs["exchange-sim"] == {"TM_SIM_ADMIN_TOKEN": sim}
    assert refs["ingest"] == {"TM_INGEST_SIM_ADMIN_TOKEN": sim}
    assert all(not r for n, r in refs.items() if n not in ("risk", "exchange-sim", "ingest"))


def _operator_files(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tm_app.stack.redis_acl", "--out", str(out),
                           *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_operator_files_load_into_redis_and_let_each_user_in(tmp_path):
    """The README's step before the Secret: one 0600 password file per user (one per key the
    chart names), an ACL file Redis 7 loads holding hashes only, each user in with its file's
    password and confined to the namespace given; nothing secret is printed; a second run
    keeps the users it would lock out."""
    out = tmp_path / "redis-acl"
    r = _operator_files(out, "--namespace", "tmop:")
    assert r.returncode == 0, r.stderr
    files = {p.name: p for p in (out / "passwords").iterdir()}
    assert set(files) == set(ALL_USERS) and set(ACCESS) < set(files)
    assert stat.S_IMODE((out / "passwords").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files.values())
    passwords = {user: p.read_text() for user, p in files.items()}
    shown = r.stdout + r.stderr + (out / "users.acl").read_text()
    assert all(len(pw) >= 32 and pw not in shown for pw in passwords.values())

    (tmp_path / "srv").mkdir()
    server = RedisServer(tmp_path / "srv", config=[f"aclfile {out / 'users.acl'}"]).start()
    try:
        def as_user(user: str) -> redis.Redis:
            return redis.Redis.from_url(server.url_for(user, passwords[user]))
        assert all(as_user(user).ping() for user in ALL_USERS)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(server.url_for("signal", passwords["risk"])).ping()
        sig = as_user("signal")
        sig.xadd(f"tmop:{st.SIGNAL_TL}", {"a": "1"})
        for refused in (f"tmop:{st.RISK_ORDER}", f"tm:{st.SIGNAL_TL}"):
            with pytest.raises(NoPermissionError):
                sig.xadd(refused, {"a": "1"})
        as_user(ADMIN_USER).xadd(f"tm:{st.RISK_ORDER}", {"a": "1"})
    finally:
        server.stop()

    again = _operator_files(out)
    assert again.returncode == 1 and again.stderr.startswith("error: ") \
        and "exists" in again.stderr, again
    assert {user: p.read_text() for user, p in files.items()} == passwords
