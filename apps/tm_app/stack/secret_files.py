"""The end every secrets generator's command shares: write, then say where, never what."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def write_files(write: Callable[[], list[Path]], done: Callable[[list[Path]], str]) -> int:
    """Run ``write`` for a command line: ``error: …`` on stderr and exit status 1 when it cannot
    (the secrets exist and are kept, a folder is not writable), else ``done(paths)`` on stdout
    and 0. Neither line holds a secret: both name files only."""
    try:
        written = write()
    except OSError as e:  # FileExistsError included
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(done(written))
    return 0
