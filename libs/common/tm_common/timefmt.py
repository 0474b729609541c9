"""Times as people read them: ms since the epoch → UTC text, the one formatter of the CLI's
progress lines, the reports' windows, the drills and risk's reasons."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_minute(ms: int) -> str:
    """``"YYYY-MM-DD HH:MM"`` of ``ms`` (ms since the epoch) in UTC (pure: no clock is read)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
