"""Event factories for tests and benchmarks."""

from __future__ import annotations

from decimal import Decimal

from tm_common.events import BarClosed, Envelope
from tm_common.history import HistoryBar

H4_MS = 4 * 3600 * 1000


def bar(instrument: str = "BTCUSDT", i: int = 0, *, t0_ms: int = 1_700_000_000_000 // H4_MS * H4_MS,
        price: str = "100.5") -> BarClosed:
    """The i-th 4h bar of a synthetic series (deterministic)."""
    p = Decimal(price) + Decimal(i) / 10
    open_ms = t0_ms + i * H4_MS
    return BarClosed(instrument=instrument, open_time_ms=open_ms, close_time_ms=open_ms + H4_MS - 1,
                     open=p, high=p + 1, low=p - 1, close=p + Decimal("0.25"),
                     volume=Decimal("12.5"), source="replay")


def bar_event(instrument: str = "BTCUSDT", i: int = 0, *, ts_init_ns: int = 1) -> Envelope:
    """A root ``bar.closed`` envelope with a deterministic id."""
    b = bar(instrument, i)
    return Envelope.root(b, key=f"{instrument}:{b.open_time_ms}",
                         correlation_id=f"{instrument}:{b.open_time_ms}",
                         ts_event_ns=(b.close_time_ms + 1) * 1_000_000, ts_init_ns=ts_init_ns)


def history_bar_event(instrument: str, hb: HistoryBar, *, ts_init_ns: int = 1) -> Envelope:
    """A shipped-history 4h bar (:func:`tm_common.history.load_bars`) as a root ``bar.closed``
    envelope the way ingest's replay publishes it: id from the natural key
    ``<instrument>:<open_time_ms>``, ``ts_event_ns`` at the bar's close."""
    b = BarClosed(instrument=instrument, open_time_ms=hb.open_time_ms,
                  close_time_ms=hb.open_time_ms + H4_MS - 1, open=Decimal(hb.open),
                  high=Decimal(hb.high), low=Decimal(hb.low), close=Decimal(hb.close),
                  volume=Decimal(hb.volume), source="replay")
    key = f"{instrument}:{hb.open_time_ms}"
    return Envelope.root(b, key=key, correlation_id=key,
                         ts_event_ns=(hb.open_time_ms + H4_MS) * 1_000_000, ts_init_ns=ts_init_ns)
