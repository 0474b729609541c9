"""Redis ACL users for an operator's Redis (the Helm deployment):

    .venv/bin/python -m tm_app.stack.redis_acl --out DIR [--namespace tm:] [--redis6]

writes ``DIR/users.acl`` (the rules of :mod:`tm_common.bus.acl`, SHA-256 hashes of new 256-bit
random passwords; load it with ``--aclfile`` or ``ACL LOAD``) and ``DIR/passwords/<user>``
(mode 0600, one file per user, for ``kubectl create secret generic trade-matrix-redis
--from-file=DIR/passwords``). It refuses to replace an existing ``users.acl``: new passwords
would lock out every release still holding the old ones. The compose stack's secrets are written
by :mod:`tm_app.stack.compose_secrets`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tm_common.bus import acl

from tm_app.stack.secret_files import write_files


def write_operator_files(out: Path, ns: str = "tm:", *, redis7: bool = True) -> list[Path]:
    """``out/users.acl`` and ``out/passwords/<user>`` for every user of the ACL (the first path
    returned is the ACL file). Raises ``FileExistsError`` when ``out/users.acl`` exists."""
    pw_dir = out / "passwords"
    if (out / "users.acl").exists():
        raise FileExistsError(f"{out / 'users.acl'} exists; remove it to generate new users")
    pw_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    passwords = acl.new_passwords()
    written = []
    for user, pw in passwords.items():
        path = pw_dir / user
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pw)
        written.append(path)
    (out / "users.acl").write_text(acl.acl_file(passwords, ns, redis7=redis7))
    return [out / "users.acl", *written]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tm_app.stack.redis_acl", description="Generate "
                                "a least-privilege Redis ACL file and one password file per "
                                "user for an operator's Redis (passwords are never printed).")
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    p.add_argument("--namespace", default="tm:", help="TM_NAMESPACE of the deployment")
    p.add_argument("--redis6", action="store_true", help="Redis 6.2 rules (no selectors)")
    args = p.parse_args(argv)
    return write_files(
        lambda: write_operator_files(args.out, args.namespace, redis7=not args.redis6),
        lambda files: f"wrote {files[0]} and {len(files) - 1} password files under "
                      f"{args.out / 'passwords'}")


if __name__ == "__main__":
    raise SystemExit(main())
