"""Replay windows of the drills (chaos, faults): does the shipped history cover one?"""

from __future__ import annotations

from collections.abc import Iterable

BAR_MS = 4 * 3600 * 1000


def window_end_ms(start_ms: int, bars: int) -> int:
    """Open time (ms) of the last of ``bars`` 4h bar times from ``start_ms``."""
    return start_ms + (bars - 1) * BAR_MS


def window_shortfall(symbols: Iterable[str], start: str, start_ms: int, bars: int, *,
                     fewer: str = "--bars") -> str | None:
    """``None`` when the shipped history has ``bars`` bars of every symbol from ``start_ms``
    (``start`` is how the user wrote it); else why not, as a message for the user: a missing
    history file, or the first symbol short of bars (``fewer`` names the option to lower)."""
    from tm_common.history import HistoryFileError, load_bars

    end_ms = window_end_ms(start_ms, bars)
    for sym in symbols:
        try:
            have = len(load_bars(sym, start_ms, end_ms))
        except HistoryFileError as e:
            return str(e)
        if have < bars:
            return (f"{sym}: {have} shipped bars from {start} in {bars} bar times; "
                    f"choose an earlier --start or fewer {fewer}")
    return None
