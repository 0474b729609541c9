"""TLS to PostgreSQL: the certificate options of a URL, and a warning when it is not verified.

The production setting is ``?sslmode=verify-full&sslrootcert=/path/to/ca.crt``: encrypted, and
the server's certificate checked against that CA and its name against the host (the CA mounted
from a Secret). ``verify-ca`` checks the CA only. ``require`` encrypts but accepts any
certificate, so anyone on the path can present one; ``prefer`` (asyncpg's default) and
``disable`` may not even encrypt.

libpq spells the file options ``sslrootcert``/``sslcert``/``sslkey`` in the URL; asyncpg reads them
from a DSN but SQLAlchemy passes URL options as keyword arguments, which asyncpg does not take for
these. :func:`tls_connect_args` turns them into the ``ssl`` argument (an ``SSLContext``) instead.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

import structlog
from sqlalchemy.engine import URL

from tm_common.errors import ConfigError

VERIFIED_MODES = frozenset({"verify-full", "verify-ca"})
DEFAULT_MODE = "prefer"                     # asyncpg's, when the URL names none
FILE_OPTIONS = ("sslrootcert", "sslcert", "sslkey")
LOCAL_NAMES = frozenset({"", "localhost", "localhost.localdomain", "ip6-localhost"})

log = structlog.get_logger("tm_common.db")
_warned: set[str] = set()


def tls_mode(url: URL) -> str:
    """The URL's TLS mode (``ssl`` or libpq's ``sslmode``), lower case; ``prefer`` if none."""
    value = url.query.get("ssl") or url.query.get("sslmode") or DEFAULT_MODE
    return str(value if isinstance(value, str) else value[-1]).strip().lower()


def _host(url: URL) -> str:
    """The server the URL reaches: its host, or a ``?host=`` option (a socket folder)."""
    if url.host:
        return url.host
    value = url.query.get("host", "")
    return str(value if isinstance(value, str) else value[0])


def is_local_host(host: str) -> bool:
    """Loopback, a Unix socket (a path), or no host at all (the local socket)."""
    host = host.strip().strip("[]").lower()
    if host in LOCAL_NAMES or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unverified_remote(url: URL) -> str | None:
    """Why traffic to ``url`` would leave this host without a verified server certificate
    (``None``: SQLite, a local server, or ``verify-full``/``verify-ca``)."""
    if url.get_backend_name() != "postgresql":
        return None
    host = _host(url)
    mode = tls_mode(url)
    if is_local_host(host) or mode in VERIFIED_MODES:
        return None
    return f"sslmode={mode} to {host} does not verify the server's certificate"


def warn_if_unverified(url: URL) -> bool:
    """Log ``db.tls_unverified`` (once per host and process) when :func:`unverified_remote`
    says so; returns whether it did now."""
    why = unverified_remote(url)
    host = _host(url)
    if why is None or host in _warned:
        return False
    _warned.add(host)
    log.warning("db.tls_unverified", host=host, sslmode=tls_mode(url), reason=why,
                hint="use ?sslmode=verify-full&sslrootcert=<CA file> in TM_DATABASE_URL")
    return True


def tls_connect_args(url: URL) -> tuple[URL, dict[str, Any]]:
    """``url`` without libpq's certificate-file options, and the ``connect_args`` that carry
    them (``{"ssl": SSLContext}``); ``(url, {})`` when it has none.

    The files need ``sslmode=verify-full`` (host name checked) or ``verify-ca``; a file that
    cannot be read is a :class:`ConfigError` naming the option (never the URL).
    """
    given = {k: str(url.query[k]) for k in FILE_OPTIONS if k in url.query}
    if not given:
        return url, {}
    mode = tls_mode(url)
    names = ", ".join(sorted(given))
    if mode not in VERIFIED_MODES:
        raise ConfigError(f"{names} given with sslmode={mode}: use sslmode=verify-full (or "
                          "verify-ca) so that the server's certificate is checked")
    if "sslkey" in given and "sslcert" not in given:
        raise ConfigError("sslkey is given without sslcert")
    try:
        ctx = ssl.create_default_context(cafile=given.get("sslrootcert"))
        ctx.check_hostname = mode == "verify-full"
        if "sslcert" in given:
            ctx.load_cert_chain(given["sslcert"], given.get("sslkey"))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the database TLS files ({names}): "
                          f"{type(e).__name__}: {e.strerror or e}") from None
    stripped = url.difference_update_query([*FILE_OPTIONS, "ssl", "sslmode"])
    return stripped, {"ssl": ctx}
