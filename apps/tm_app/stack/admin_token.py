"""The local stack's admin token: generated into ``<data_dir>/admin-token`` (mode 0600) when
``TM_ADMIN_TOKEN`` is unset, so that ``tm breaker``/``tm kill`` work against ``tm up`` without the
user exporting a secret in two shells. The token is never printed; the state file names the
file, not the token.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from tm_common.settings import CommonSettings

from tm_app.stack.stack import StackError, data_dir

TOKEN_FILE = "admin-token"


def admin_token_path(settings: CommonSettings) -> Path:
    return data_dir(settings) / TOKEN_FILE


def read_token_file(path: Path) -> str:
    """The token in ``path``; :class:`StackError` if it is missing, empty, or readable by other
    users (a token file must be mode 0600)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        token = path.read_text().strip()
    except OSError as e:
        raise StackError(f"cannot read the admin token file {path}: {e.strerror}") from None
    if mode & 0o077:
        raise StackError(f"the admin token file {path} is open to other users (mode "
                         f"{mode:03o}); chmod 600 it")
    if not token:
        raise StackError(f"the admin token file {path} is empty")
    return token


def ensure_admin_token(settings: CommonSettings) -> Path:
    """``<data_dir>/admin-token``: created with a random token (mode 0600, never group- or
    world-readable, even for a moment) if missing; checked with :func:`read_token_file`."""
    path = admin_token_path(settings)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    read_token_file(path)
    return path


def generated_token_file(settings: CommonSettings, token: str | None) -> Path | None:
    """The stack's generated token file when ``token`` (the one the services were given) is
    that file's; ``None`` when it is the user's own ``TM_ADMIN_TOKEN``, or there is none."""
    path = admin_token_path(settings)
    if not token or not path.exists():
        return None
    try:
        same = read_token_file(path) == token
    except StackError:
        return None
    return path if same else None


def find_admin_token(settings: CommonSettings, state: dict | None) -> str | None:
    """The token for an admin command: ``TM_ADMIN_TOKEN`` if set, else the running stack's
    generated file (its state's ``admin_token_file``, else ``<data_dir>/admin-token`` if it
    exists), else ``None``. A token file open to other users is a :class:`StackError`."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    recorded = (state or {}).get("admin_token_file")
    path = Path(recorded) if recorded else admin_token_path(settings)
    return read_token_file(path) if path.exists() else None
