"""The venue's journal (``TM_SIM_JOURNAL_FILE``): every input that changes the venue, one JSON
line each, so that a restarted venue is the same account (``tm paper``'s paper venue runs for
weeks, and the matching engine keeps its book in memory).

The engine is a function of (seed, inputs): the bars and funding rates pushed, the instruments
replaced, resets, clock moves, and, with their outcome, refused ones included, the private POST
requests (orders, cancels, amends, leverage, position mode, trading stops) and the transfers
(``{"kind": "transfer", "amount": "-250.5", "outcome": "ok"}``): replayed, each must end as it
did (taken, or refused), else the restore stops there rather than build another account.
Replaying the lines in order through the same code (:func:`tm_exchange_sim.restore.replay_journal`)
gives back the same orders, ids, executions, positions and wallet. Each line is written and
``fsync``ed before the request's answer leaves: a client that got an answer finds it after a
restart; one cut off before may retry (an ``orderLinkId`` is refused as a duplicate only if the
first try was journaled, and then it is found by that id). A torn last line (the process killed
while writing it) is skipped, and cut off before the next line is written; any other unreadable
line stops the start with its number.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tm_common.errors import ConfigError


class JournalError(ConfigError):
    """The journal cannot be read back (an unreadable line that is not the last), named."""


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def read(self) -> list[dict[str, Any]]:
        """The entries written so far (none when there is no file yet)."""
        try:
            lines = self.path.read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            return []
        entries: list[dict[str, Any]] = []
        last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
                    raise ValueError("not an entry object")
            except ValueError as e:
                if i == last:               # torn by a kill while it was written
                    break
                raise JournalError(f"venue journal {self.path}: line {i + 1} is unreadable "
                                   f"({e}); the venue cannot be restored from it") from e
            entries.append(entry)
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        """One line, on disk before this returns. A torn last line (never replayed) is cut
        off first, so that it does not become an unreadable line in the middle."""
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                data = self.path.read_bytes()
                if data and not data.endswith(b"\n"):
                    os.truncate(self.path, data.rfind(b"\n") + 1)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
