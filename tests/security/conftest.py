"""Fixtures of the security proofs (issue 9, item 4): distinctive secrets, private servers and
real service processes.

- :data:`SECRETS`: values no code would produce by chance, with URL-special characters so that
  their raw and URL-encoded forms differ; :func:`leaks` looks for every form of each.
- ``secure_redis``: a private ``redis-server`` with ``requirepass`` (default user) and an ACL user
  ``tmsvc``. ``tls_redis``: the same behind TLS only (``tls-auth-clients yes``), certificates from
  a throwaway CA (``certs``). ``private_pg``: a private PostgreSQL 15 with SCRAM password auth and
  ``ssl=on``.
- ``service``: ``service(name, module, env)`` → a started
  :class:`~tm_common.testing.processes.ServiceProcess` (logs to a file, ``TM_*``/``PG*`` of the
  test's environment removed), stopped after the test.

Nothing here touches the shared Redis/PostgreSQL servers' configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from tm_common.testing.processes import ServiceProcess, clean_env, stopped_after
from tm_common.testing.redis import RedisServer, RedisServerExited, free_port
from tm_common.testing.wait import wait_for  # noqa: F401 - the tests import it from here

SECRETS = {
    "bybit_api_key": "SECK3y-bybit-7f3a91",
    "bybit_api_secret": "SECs3cr3t-bybit-d2e8c4b6a0",
    "admin_token": "SECadm1n/tok+en=5b7d-91f0",
    "db_password": "SECdbP@ss:w0rd/71",
    "redis_password": "SECrd!sP@ss#42",          # the default user's (requirepass)
    "redis_acl_password": "SECacl-Pw%x/7",        # ACL user tmsvc
}
ACL_USER = "tmsvc"
WRONG_TOKEN = "SECwrong-admin-token-3c9e"
WRONG_REDIS_PASSWORD = "SECwrong-rd!s-pw@1"


def enc(value: str) -> str:
    """``value`` percent-encoded for the userinfo part of a URL."""
    return quote(value, safe="")


def forms(value: str) -> set[str]:
    """The spellings a secret could leak in: raw, percent-encoded (two ways), JSON-escaped."""
    return {value, quote(value, safe=""), quote(value), quote_plus(value),
            json.dumps(value)[1:-1]}


def leaks(text: str, secrets: dict[str, str] | None = None) -> list[str]:
    """``name (form)`` for every form of every secret found in ``text``."""
    found = []
    for name, value in (secrets or SECRETS).items():
        for f in sorted(forms(value)):
            if f in text:
                found.append(f"{name} ({f!r})")
    return found


def _clean_env() -> dict[str, str]:
    return clean_env(("TM_", "PG"))


# -- Redis ---------------------------------------------------------------------------------------
@dataclass
class SecureRedis:
    """A private :class:`RedisServer` with ``requirepass`` and the ACL user ``tmsvc``."""

    server: RedisServer

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, user: str | None = ACL_USER, password: str | None = None, db: int = 0,
            query: str = "") -> str:
        """``redis[s]://user:password@127.0.0.1:port/db`` (password percent-encoded; default: the
        ACL user's)."""
        if password is None:
            password = SECRETS["redis_acl_password"] if user == ACL_USER else SECRETS["redis_password"]
        return self.server.url_for(user, password, db, query)


def _start_redis(workdir: Path, *, tls: dict[str, Path] | None = None) -> SecureRedis:
    server = RedisServer(workdir, tls=tls, config=[
        f'requirepass "{SECRETS["redis_password"]}"',
        f"user {ACL_USER} on >{SECRETS['redis_acl_password']} ~* &* +@all"])
    try:
        server.start()
    except RedisServerExited as e:
        if tls and "tls" in e.log.lower() and "bad directive" in e.log.lower():
            pytest.skip("this redis-server is built without TLS: the end-to-end TLS proofs "
                        "cannot run (test_tls_settings_reach_the_connection_pool still does)")
        raise
    return SecureRedis(server)


@pytest.fixture(scope="session")
def secure_redis(tmp_path_factory) -> Iterator[SecureRedis]:
    """Redis 7 requiring a password (default user) or the ACL user ``tmsvc``."""
    redis = _start_redis(tmp_path_factory.mktemp("secure-redis"))
    yield redis
    redis.server.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> dict[str, Path]:
    """A throwaway CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not on PATH")
    d = tmp_path_factory.mktemp("certs")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=tm-security-test-ca")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for who, ext in (("server", ["-extfile", "server.ext"]), ("client", [])):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out", f"{who}.csr",
            "-subj", f"/CN={'localhost' if who == 'server' else 'tm-client'}")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{who}.crt", "-days", "2", *ext)
    return {"ca": d / "ca.crt", "server_crt": d / "server.crt", "server_key": d / "server.key",
            "client_crt": d / "client.crt", "client_key": d / "client.key"}


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory, certs) -> Iterator[SecureRedis]:
    """Redis 7 on a TLS-only port, client certificates required, same users as secure_redis."""
    redis = _start_redis(tmp_path_factory.mktemp("tls-redis"), tls=certs)
    yield redis
    redis.server.stop()


# -- PostgreSQL ----------------------------------------------------------------------------------
@dataclass
class PgServer:
    port: int
    datadir: Path
    as_postgres: bool

    def url(self, db: str = "postgres", password: str | None = None, query: str = "") -> str:
        pw = SECRETS["db_password"] if password is None else password
        return f"postgresql+asyncpg://postgres:{enc(pw)}@127.0.0.1:{self.port}/{db}{query}"


def _pg_bin(name: str) -> str:
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                check=True).stdout.strip()
        if (Path(bindir) / name).exists():
            return str(Path(bindir) / name)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} (PostgreSQL server binaries) not found")
    return found


@pytest.fixture(scope="session")
def private_pg(certs) -> Iterator[PgServer]:
    """A private PostgreSQL: password (SCRAM) auth on TCP, ``ssl=on`` with the test CA's
    server certificate, superuser ``postgres`` whose password is ``SECRETS['db_password']``."""
    as_postgres = os.geteuid() == 0            # initdb refuses to run as root
    root = Path(tempfile.mkdtemp(prefix="tm-sec-pg-"))
    (root / "pw").write_text(SECRETS["db_password"] + "\n")
    for src, dst in ((certs["server_crt"], "server.crt"), (certs["server_key"], "server.key")):
        shutil.copy(src, root / dst)
    (root / "server.key").chmod(0o600)
    prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []
    if as_postgres:
        root.chmod(0o755)
        shutil.chown(root, "postgres")
        for p in root.iterdir():
            shutil.chown(p, "postgres")
    data = root / "data"
    subprocess.run([*prefix, _pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                    "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={root / 'pw'}",
                    "--no-sync"], check=True, capture_output=True, timeout=120)
    port = free_port()
    opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c ssl=on "
            f"-c ssl_cert_file={root / 'server.crt'} -c ssl_key_file={root / 'server.key'} "
            "-c fsync=off -c max_connections=200")
    subprocess.run([*prefix, _pg_bin("pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                    "-o", opts, "-w", "-t", "60", "start"], check=True, capture_output=True,
                   timeout=90)
    try:
        yield PgServer(port, data, as_postgres)
    finally:
        subprocess.run([*prefix, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


# -- service processes ---------------------------------------------------------------------------
@pytest.fixture
def service(tmp_path):
    """``service(name, module, env, start=True)`` → a :class:`ServiceProcess`; all are stopped
    after the test."""
    with stopped_after() as group:
        def make(name: str, module: str, env: dict[str, str], start: bool = True) -> ServiceProcess:
            d = tmp_path / name
            d.mkdir(exist_ok=True)
            return group.add(ServiceProcess(module, {"TM_DATA_DIR": str(d / ".tm"), **env},
                                            d / f"{name}.log", cwd=d, drop_prefixes=("TM_", "PG"),
                                            http_timeout_s=15), start=start)
        yield make
