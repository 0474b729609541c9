"""TLS to PostgreSQL (issue 19, part 8): a non-local server reached without a verified
certificate is warned about once at start; local servers and verify-full/verify-ca never are.
The engine is made for real (``make_engine``); nothing connects."""

from __future__ import annotations

import ssl

import pytest
from structlog.testing import capture_logs
from tm_common.db import make_engine, tls
from tm_common.db.engine import async_url
from tm_common.errors import ConfigError

PW = "SECdb-pw-5e1a"


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(tls, "_warned", set())


def warnings_for(*urls: str) -> list[dict]:
    with capture_logs() as logs:
        for url in urls:
            make_engine(url)
    return [e for e in logs if e["event"] == "db.tls_unverified"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.4.5.6", "[::1]",
                                  "localhost.localdomain"])
@pytest.mark.parametrize("query", ["", "?sslmode=disable", "?sslmode=require", "?ssl=prefer"])
def test_local_hosts_never_warn(host, query):
    assert warnings_for(f"postgresql+asyncpg://tm:{PW}@{host}:5432/tm{query}") == []


def test_unix_sockets_and_sqlite_never_warn(tmp_path):
    assert warnings_for("postgresql+asyncpg://tm@/tm?host=/var/run/postgresql",
                        f"sqlite+aiosqlite:///{tmp_path}/x.db") == []


@pytest.mark.parametrize("query", ["?sslmode=verify-full", "?ssl=verify-full",
                                   "?sslmode=verify-ca", "?sslmode=VERIFY-FULL"])
def test_verified_modes_never_warn(query):
    assert warnings_for(f"postgresql+asyncpg://tm:{PW}@db.internal:5432/tm{query}") == []


@pytest.mark.parametrize("query,mode", [("?sslmode=require", "require"), ("?ssl=require", "require"),
                                        ("?sslmode=disable", "disable"), ("", "prefer"),
                                        ("?sslmode=allow", "allow")])
def test_unverified_remote_warns_once_per_host(query, mode):
    url = f"postgresql+asyncpg://tm:{PW}@db.internal:5432/tm{query}"
    found = warnings_for(url, url, f"postgresql://tm:{PW}@10.0.0.7/tm{query}")
    assert [(w["host"], w["sslmode"]) for w in found] == [("db.internal", mode), ("10.0.0.7", mode)]
    assert found[0]["log_level"] == "warning"
    assert "verify-full" in found[0]["hint"] and PW not in repr(found)


def test_the_warning_reaches_the_service_log():
    """Through the project's logging: one JSON line, the password absent."""
    import io

    from tm_common.logging import configure_logging
    from tm_common.settings import CommonSettings

    url = f"postgresql+asyncpg://tm:{PW}@db.internal:5432/tm?sslmode=require"
    out = io.StringIO()
    configure_logging(CommonSettings.from_values(database_url=url), stream=out)
    make_engine(url)
    make_engine(url)
    lines = [ln for ln in out.getvalue().splitlines() if "db.tls_unverified" in ln]
    assert len(lines) == 1 and '"level": "warning"' in lines[0], out.getvalue()
    assert PW not in out.getvalue()


# -- certificate files in the URL ----------------------------------------------------------------
def test_sslrootcert_becomes_a_verifying_context(tmp_path):
    ca = _self_signed_pem(tmp_path)
    url, args = tls.tls_connect_args(async_url(
        f"postgresql://tm:{PW}@db.internal/tm?sslmode=verify-full&sslrootcert={ca}"))
    ctx = args["ssl"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "tm-test-ca"),),)]
    assert dict(url.query) == {} and url.password == PW and url.host == "db.internal"
    _, args = tls.tls_connect_args(async_url(
        f"postgresql://tm@db.internal/tm?sslmode=verify-ca&sslrootcert={ca}"))
    assert args["ssl"].check_hostname is False and args["ssl"].verify_mode == ssl.CERT_REQUIRED
    plain = async_url("postgresql://tm@db.internal/tm?sslmode=verify-full")
    assert tls.tls_connect_args(plain) == (plain, {})
    make_engine(f"postgresql+asyncpg://tm@db.internal/tm?sslmode=verify-full&sslrootcert={ca}")


def test_certificate_files_need_a_verifying_mode_and_readable_files(tmp_path):
    with pytest.raises(ConfigError, match="sslrootcert given with sslmode=require"):
        make_engine("postgresql+asyncpg://tm@db/tm?sslmode=require&sslrootcert=/x/ca.pem")
    with pytest.raises(ConfigError, match=r"cannot load the database TLS files \(sslrootcert\)"):
        make_engine(f"postgresql+asyncpg://tm:{PW}@db/tm?sslmode=verify-full"
                    f"&sslrootcert={tmp_path}/missing.pem")
    with pytest.raises(ConfigError, match="sslkey is given without sslcert"):
        make_engine("postgresql+asyncpg://tm@db/tm?sslmode=verify-full&sslkey=/x/k.pem")


def _self_signed_pem(tmp_path) -> str:
    """A throwaway CA certificate (PEM file path)."""
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem"), "-days", "1",
                    "-subj", "/CN=tm-test-ca"], check=True, capture_output=True, timeout=60)
    return str(tmp_path / "c.pem")
