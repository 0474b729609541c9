"""The local stack's admin tokens: one per service with admin endpoints
(:data:`tm_common.admin_tokens.ADMIN_TOKEN_VARS`: risk, the simulator), generated into one file,
``<data_dir>/admin-token`` (mode 0600, JSON ``{"risk": ..., "exchange_sim": ...}``), when
``TM_ADMIN_TOKEN`` is unset, so that ``tm breaker``/``tm kill`` work against ``tm up`` without the
user exporting a secret in two shells. Each service gets only its own (``TM_RISK_ADMIN_TOKEN``,
``TM_SIM_ADMIN_TOKEN``; ingest the simulator's as ``TM_INGEST_SIM_ADMIN_TOKEN``): ingest, which
parses external data, never holds the token that trips or resets the breaker. The tokens are
never printed; the state file names the file, not the tokens. A file of an older version (one
plain token) is replaced.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

from tm_common.admin_tokens import ADMIN_TOKEN_CLIENTS, ADMIN_TOKEN_VARS, MIN_ADMIN_TOKEN_CHARS
from tm_common.settings import CommonSettings

from tm_app.stack.stack import StackError, data_dir

TOKEN_FILE = "admin-token"


def admin_token_path(settings: CommonSettings) -> Path:
    return data_dir(settings) / TOKEN_FILE


def read_tokens(path: Path) -> dict[str, str]:
    """Every service's token in ``path``; :class:`StackError` if it is missing, malformed, lacks
    a service's token, or is readable by other users (a token file must be mode 0600)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text().strip()
    except OSError as e:
        raise StackError(f"cannot read the admin token file {path}: {e.strerror}") from None
    if mode & 0o077:
        raise StackError(f"the admin token file {path} is open to other users (mode "
                         f"{mode:03o}); chmod 600 it")
    if not text:
        raise StackError(f"the admin token file {path} is empty")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or any(not isinstance(doc.get(s), str)
                                        or len(doc[s]) < MIN_ADMIN_TOKEN_CHARS
                                        for s in ADMIN_TOKEN_VARS):
        raise StackError(f"the admin token file {path} is not a JSON map of a token per "
                         f"service ({', '.join(ADMIN_TOKEN_VARS)}); delete it to regenerate")
    return {s: str(doc[s]) for s in ADMIN_TOKEN_VARS}


def read_token_file(path: Path, service: str = "risk") -> str:
    """``service``'s token in ``path`` (:func:`read_tokens`)."""
    return read_tokens(path)[service]


def _write_new(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({s: secrets.token_urlsafe(32) for s in ADMIN_TOKEN_VARS}, fh)
        fh.write("\n")


def ensure_admin_token(settings: CommonSettings) -> Path:
    """``<data_dir>/admin-token``: created with a random token per service (mode 0600, never
    group- or world-readable, even for a moment) if missing, or replaced if it is an older
    version's single token; checked with :func:`read_tokens`."""
    path = admin_token_path(settings)
    try:
        _write_new(path)
    except FileExistsError:
        try:
            json.loads(path.read_text())
        except ValueError:                # an older version's single token: replace it
            path.unlink()
            _write_new(path)
        except OSError:
            pass
    read_tokens(path)
    return path


def token_env(path: Path) -> dict[str, str]:
    """The variables that give each service its own token from ``path``: ``TM_RISK_ADMIN_TOKEN``,
    ``TM_SIM_ADMIN_TOKEN``, and ``TM_INGEST_SIM_ADMIN_TOKEN`` (the simulator's, for ingest)."""
    tokens = read_tokens(path)
    env = {var: tokens[s] for s, var in ADMIN_TOKEN_VARS.items()}
    env.update({var: tokens[owner] for owner, var in ADMIN_TOKEN_CLIENTS.values()})
    return env


def generated_token_file(settings: CommonSettings, token: str | None) -> Path | None:
    """The stack's generated token file when ``token`` (risk's, as the services were given it) is
    that file's; ``None`` when it is the user's own, or there is none."""
    path = admin_token_path(settings)
    if not token or not path.exists():
        return None
    try:
        same = read_token_file(path) == token
    except StackError:
        return None
    return path if same else None


def find_admin_token(settings: CommonSettings, state: dict | None,
                     service: str = "risk") -> str | None:
    """The token for an admin command to ``service``: ``TM_ADMIN_TOKEN`` if set, else the
    running stack's generated file (its state's ``admin_token_file``, else
    ``<data_dir>/admin-token`` if it exists), else ``None``. A token file open to other users
    is a :class:`StackError`."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    recorded = (state or {}).get("admin_token_file")
    path = Path(recorded) if recorded else admin_token_path(settings)
    return read_token_file(path, service) if path.exists() else None
