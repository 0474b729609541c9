"""The paper run's instruments file, followed: ``tm paper`` writes the market's instruments-info
answer for the traded symbols at start and its relay rewrites it whenever the market changes a
filter, a funding interval or a listing's status (:mod:`tm_app.paper_relay`). The shadow book
reads it again when it was rewritten, so a challenger trades with the filters production's paper
venue has, and is delisted when production is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class FollowedFile:
    """``changed()``: the file's JSON when its text differs from the last call's, else None
    (also while there is no file, or no path). The text, not the modification time: two
    rewrites within the file system's clock tick would look alike."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: str | None = None

    def changed(self) -> Any | None:
        """Raises ``ValueError`` (the path named) when the file is there and unreadable or not
        JSON; it is read again on the next call."""
        if self.path is None:
            return None
        try:
            text = self.path.read_text(encoding="utf-8")
            if text == self._seen:
                return None
            doc = json.loads(text)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ValueError(f"instruments file {self.path}: {type(e).__name__}: {e}") from e
        self._seen = text
        return doc
