"""The secrets of the docker-compose stack, generated once on the host:

    .venv/bin/python -m tm_app.stack.compose_secrets            # → deploy/compose-secrets/

writes, into a new folder (``--out``; refused if it already holds secrets, ``--force`` replaces
them, which invalidates signed entries still pending in Redis):

- ``users.acl``: the Redis ACL file (:mod:`tm_common.bus.acl`, namespace ``tm:``), mounted into
  the ``redis`` container and loaded with ``--aclfile``. It holds SHA-256 hashes of 256-bit
  random passwords only, so it is mode 0644 (the container's ``redis`` user must read it).
- ``<service>.env`` (mode 0600), one per process of the compose file, read by docker compose on
  the host (``env_file:``) and handed to that container only: its ``TM_REDIS_URL`` with its own
  Redis user and password, the signing keys it holds (:func:`tm_common.bus.signing
  .service_signing_env`), and the admin token of a service with admin endpoints
  (``TM_RISK_ADMIN_TOKEN``, ``TM_SIM_ADMIN_TOKEN``; ingest the simulator's). ``tm-admin.env``
  is the operator's (``tm`` commands against the compose Redis); ``tm.env`` gives the ``tm``
  CLI risk's admin token (``tm breaker``/``tm kill``).
- ``.gitignore`` (``*``): the folder is never committed.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from tm_common.admin_tokens import ADMIN_TOKEN_CLIENTS, ADMIN_TOKEN_VARS
from tm_common.bus import acl
from tm_common.bus.signing import generate_keys, service_signing_env

from tm_app.stack.secret_files import write_files

DEFAULT_OUT = Path("deploy/compose-secrets")
REDIS_HOST_URL = "redis://redis:6379/0"
#: compose service → its Redis user (the trainer one-shot job is ``trainer``)
COMPOSE_SERVICES: dict[str, str] = {
    "ingest": "ingest", "regime": "regime", "signal": "signal", "sizer": "sizer",
    "risk": "risk", "executor": "executor", "portfolio": "portfolio", "trainer": "trainer",
    "shadow": "shadow", "exchange-sim": ""}


def _write(path: Path, text: str, mode: int) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)            # whatever the umask


def _env_text(env: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in sorted(env.items()))


def generate(out: Path, *, force: bool = False) -> list[Path]:
    """Write every file into ``out`` (created, mode 0700); the paths written."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (out / "users.acl").exists() and not force:
        raise FileExistsError(f"{out} already holds the compose secrets (--force replaces "
                              "them; signed entries pending in Redis would then be refused)")
    passwords = acl.new_passwords()
    keys = generate_keys()
    tokens = {s: secrets.token_urlsafe(32) for s in ADMIN_TOKEN_VARS}
    written = [out / ".gitignore", out / "users.acl"]
    _write(written[0], "*\n", 0o644)
    _write(written[1], acl.acl_file(passwords, "tm:"), 0o644)
    for service, user in COMPOSE_SERVICES.items():
        name = service.replace("-", "_")
        env = service_signing_env(name, keys)
        # no Redis user: no credentials (the simulator does not use Redis)
        env["TM_REDIS_URL"] = acl.user_url(REDIS_HOST_URL, user, passwords[user]) if user \
            else REDIS_HOST_URL
        if name in ADMIN_TOKEN_VARS:
            env[ADMIN_TOKEN_VARS[name]] = tokens[name]
        if name in ADMIN_TOKEN_CLIENTS:
            owner, var = ADMIN_TOKEN_CLIENTS[name]
            env[var] = tokens[owner]
        written.append(out / f"{service}.env")
        _write(written[-1], _env_text(env), 0o600)
    admin = acl.user_url("redis://127.0.0.1:6379/0", acl.ADMIN_USER, passwords[acl.ADMIN_USER])
    written.append(out / "tm-admin.env")
    _write(written[-1], _env_text({"TM_REDIS_URL": admin}), 0o600)
    written.append(out / "tm.env")
    _write(written[-1], _env_text({"TM_ADMIN_TOKEN": tokens["risk"]}), 0o600)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tm_app.stack.compose_secrets",
                                description="Generate the docker-compose stack's Redis ACL "
                                "file and per-service secrets (never printed).")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder (default {DEFAULT_OUT})")
    p.add_argument("--force", action="store_true", help="replace existing secrets")
    args = p.parse_args(argv)
    return write_files(lambda: generate(args.out, force=args.force),
                       lambda written: f"wrote {len(written)} files to {args.out} (the .env "
                                       "files are mode 0600)")


if __name__ == "__main__":
    raise SystemExit(main())
