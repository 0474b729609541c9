"""A file replaced whole or not at all: the one way the project writes a file that another
process reads while it runs (``tm status``'s state, the paper run's record, the instruments
answer, signing keys, the embedded Redis' ACL file and record, the RL data cache)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

SECRET_MODE = 0o600


def replace_file(path: Path, data: str | bytes, *, mode: int = 0o666, sync: bool = False) -> None:
    """Write ``data`` (text as UTF-8) to a new file beside ``path`` and rename it over ``path``.

    A reader sees the old contents or the new ones, never half of either. The temporary name is
    unique per call, so two writers of one path do not write into each other's file (the last
    rename wins). ``mode`` is the new file's permission bits from its creation on (less the
    umask), so a secret (:data:`SECRET_MODE`) is never readable by others, not even for a moment.
    ``sync``: the data and the rename reach the disk before this returns (a record that a
    restart reads back, such as the paper run's). A failure leaves ``path`` as it was and
    removes the temporary file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if sync:
        _sync_dir(path.parent)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
