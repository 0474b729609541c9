"""Fixtures of the security proofs (issue 9, item 4): distinctive secrets, private servers and
real service processes.

- :data:`SECRETS`: values no code would produce by chance, with URL-special characters so that
  their raw and URL-encoded forms differ; :func:`leaks` looks for every form of each.
- ``secure_redis``: a private ``redis-server`` with ``requirepass`` (default user) and an ACL user
  ``tmsvc``. ``tls_redis``: the same behind TLS only (``tls-auth-clients yes``), certificates from
  a throwaway CA (``certs``). ``private_pg``: a private PostgreSQL 15 with SCRAM password auth and
  ``ssl=on``.
- ``service``: ``service(name, module, env)`` → a started :class:`ServiceProcess` (logs to a
  file), stopped after the test.

Nothing here touches the shared Redis/PostgreSQL servers' configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from tm_common.testing.redis import free_port

SECRETS = {
    "bybit_api_key": "SECK3y-bybit-7f3a91",
    "bybit_api_secret": "SECs3cr3t-bybit-d2e8c4b6a0",
    "admin_token": "SECadm1n/tok+en=5b7d",
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


def wait_for(pred: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.1):
    """Poll ``pred`` until truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (httpx.HTTPError, OSError) as e:
            last = e
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last error: {last})")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TM_", "PG"))}


# -- Redis ---------------------------------------------------------------------------------------
@dataclass
class RedisServer:
    """A private ``redis-server`` (no persistence) from a generated config file."""

    port: int
    tls: bool
    proc: subprocess.Popen
    log_path: Path

    def url(self, user: str | None = ACL_USER, password: str | None = None, db: int = 0,
            query: str = "") -> str:
        """``redis[s]://user:password@127.0.0.1:port/db`` (password percent-encoded; default: the
        ACL user's)."""
        if password is None:
            password = SECRETS["redis_acl_password"] if user == ACL_USER else SECRETS["redis_password"]
        auth = f"{user or ''}:{enc(password)}@"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{db}{query}"


def _start_redis(workdir: Path, *, tls: dict[str, Path] | None = None) -> RedisServer:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not on PATH (apt-get install redis-server)")
    port = free_port()
    lines = ["bind 127.0.0.1", 'save ""', "appendonly no", f"dir {workdir}",
             f'requirepass "{SECRETS["redis_password"]}"',
             f"user {ACL_USER} on >{SECRETS['redis_acl_password']} ~* &* +@all"]
    if tls:
        lines += ["port 0", f"tls-port {port}", f"tls-cert-file {tls['server_crt']}",
                  f"tls-key-file {tls['server_key']}", f"tls-ca-cert-file {tls['ca']}",
                  "tls-auth-clients yes"]
    else:
        lines.append(f"port {port}")
    conf = workdir / "redis.conf"
    conf.write_text("\n".join(lines) + "\n")
    log_path = workdir / "redis.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["redis-server", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    server = RedisServer(port, bool(tls), proc, log_path)

    def up() -> bool:
        if proc.poll() is not None:
            text = log_path.read_text()
            if tls and "tls" in text.lower() and "bad directive" in text.lower():
                pytest.skip("this redis-server is built without TLS: the end-to-end TLS proofs "
                            "cannot run (test_tls_settings_reach_the_connection_pool still does)")
            raise AssertionError(f"redis-server exited:\n{text[-2000:]}")
        return "Ready to accept connections" in log_path.read_text()
    wait_for(up, 15, f"redis-server on {port}")
    return server


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def secure_redis(tmp_path_factory) -> Iterator[RedisServer]:
    """Redis 7 requiring a password (default user) or the ACL user ``tmsvc``."""
    server = _start_redis(tmp_path_factory.mktemp("secure-redis"))
    yield server
    _stop(server.proc)


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
def tls_redis(tmp_path_factory, certs) -> Iterator[RedisServer]:
    """Redis 7 on a TLS-only port, client certificates required, same users as secure_redis."""
    server = _start_redis(tmp_path_factory.mktemp("tls-redis"), tls=certs)
    yield server
    _stop(server.proc)


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
class ServiceProcess:
    """``python -m <module>`` on a free port with ``env`` (``TM_*`` of the test's environment
    removed), stdout+stderr to ``log_path``."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module = module
        self.port = int(env.get("TM_HTTP_PORT") or free_port())
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**_clean_env(), "PYTHONUNBUFFERED": "1", "TM_HTTP_PORT": str(self.port),
                    **env}
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         cwd=str(self.log_path.parent))
        return self

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"{self.module} exited ({self.proc and self.proc.returncode}):\n"
                                 + self.logs()[-3000:])
        return True

    def wait_http(self, path: str = "/healthz", status: int = 200, timeout_s: float = 60) -> None:
        wait_for(lambda: self.alive() and self.get(path).status_code == status, timeout_s,
                 f"{self.module} {path} → {status}")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=10)

    def post(self, path: str, token: str | None = None, header: str | None = None,
             **kw) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if header is not None:
            headers["Authorization"] = header
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.base + path, headers=headers, timeout=15, **kw)

    def wait_exit(self, timeout_s: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return None if self.proc is None else self.proc.returncode


@pytest.fixture
def service(tmp_path):
    """``service(name, module, env, start=True)`` → a :class:`ServiceProcess`; all are stopped
    after the test."""
    made: list[ServiceProcess] = []

    def make(name: str, module: str, env: dict[str, str], start: bool = True) -> ServiceProcess:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        p = ServiceProcess(module, {"TM_DATA_DIR": str(d / ".tm"), **env}, d / f"{name}.log")
        made.append(p)
        return p.start() if start else p

    yield make
    for p in made:
        p.stop()
