"""Pure parsing of the public ticker into intra-bar marks.

A Bybit V5 ``/v5/market/tickers`` row (``category=linear``) carries ``markPrice`` and
``lastPrice`` (decimal strings, USDT). The mark is ``markPrice`` (the price the venue values
positions and liquidations at), else ``lastPrice`` when the venue sends no mark. A mark is
identified by ``(instrument, at_ms)``; ``at_ms`` is the poller's clock when it asked (wall time
live).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from tm_common.errors import PermanentError
from tm_common.events import MarkUpdated


class BadMark(PermanentError, ValueError):
    """A ticker row that is not a usable mark (the message says why)."""


def _price(instrument: str, name: str, raw: Any) -> Decimal | None:
    """A positive finite price from a venue string; None when absent or empty."""
    if raw is None or raw == "":
        return None
    try:
        p = Decimal(str(raw))
    except (InvalidOperation, TypeError, ValueError) as e:
        raise BadMark(f"{instrument}: {name} {str(raw)[:40]!r} is not a number") from e
    if not p.is_finite() or p <= 0:
        raise BadMark(f"{instrument}: {name} {str(raw)[:40]!r} is not a positive price")
    return p


def mark_from_ticker(instrument: str, row: Any, at_ms: int,
                     source: str = "live") -> MarkUpdated:
    """The :class:`MarkUpdated` of one ticker row observed at ``at_ms`` (ms UTC, > 0).

    Raises:
        BadMark: the row is not an object, names another symbol, or has neither a valid
            ``markPrice`` nor a valid ``lastPrice``.
    """
    if not isinstance(row, Mapping):
        raise BadMark(f"{instrument}: ticker row is not an object")
    if row.get("symbol") != instrument:
        raise BadMark(f"{instrument}: ticker row for another symbol {str(row.get('symbol'))[:40]!r}")
    if isinstance(at_ms, bool) or not isinstance(at_ms, int) or at_ms <= 0:
        raise BadMark(f"{instrument}: ticker time {at_ms!r} is not a positive ms timestamp")
    mark = _price(instrument, "markPrice", row.get("markPrice"))
    last = _price(instrument, "lastPrice", row.get("lastPrice"))
    if mark is None and last is None:
        raise BadMark(f"{instrument}: ticker row has neither markPrice nor lastPrice")
    price = mark if mark is not None else last
    assert price is not None
    return MarkUpdated(instrument=instrument, at_ms=at_ms, mark_price=price, last_price=last,
                       source=source)  # type: ignore[arg-type]
