"""Test helpers: event factories for the portfolio's inputs. The seeded random venue that
trades against the exchange sim's engine lives above the services (:mod:`tm_app.testing`).

Not imported by the service; tests and benchmarks only.
"""

from __future__ import annotations

from decimal import Decimal

from tm_common.events import BarClosed, Envelope, FundingSettled, MarkUpdated, OrderFilled
from tm_common.testing.bars import H4_MS, SYMBOLS, T0_MS, close_ns, open_ms  # noqa: F401 (re-exported)

START_PRICES = {"BTCUSDT": 30000, "ETHUSDT": 2000, "SOLUSDT": 50}


def bar_env(instrument: str, i: int, close: Decimal | str, *, t_open_ms: int | None = None) -> Envelope:
    """The ``bar.closed`` envelope of bar ``i`` (or opening at ``t_open_ms``) as ingest makes it."""
    t = open_ms(i) if t_open_ms is None else t_open_ms
    c = Decimal(str(close))
    b = BarClosed(instrument=instrument, open_time_ms=t, close_time_ms=t + H4_MS - 1, open=c,
                  high=c, low=c, close=c, volume=Decimal(1), source="replay")
    key = f"{instrument}:{t}"
    return Envelope.root(b, key=key, correlation_id=key, ts_event_ns=(t + H4_MS) * 1_000_000,
                         ts_init_ns=(t + H4_MS) * 1_000_000)


def mark_env(instrument: str, at_ms: int, price: Decimal | str) -> Envelope:
    """An intra-bar ``mark.updated`` envelope as ingest's ticker poller publishes it."""
    m = MarkUpdated(instrument=instrument, at_ms=at_ms, mark_price=Decimal(str(price)),
                    last_price=Decimal(str(price)))
    key = f"{instrument}:{at_ms}"
    return Envelope.root(m, key=key, correlation_id=f"MARK:{key}", ts_event_ns=at_ms * 1_000_000,
                         ts_init_ns=at_ms * 1_000_000)


def fill_env(fill: OrderFilled, stamp_ns: int) -> Envelope:
    """A fill as the executor publishes it: stamped with the decision bar's close."""
    return Envelope.root(fill, key=f"exec:{fill.exec_id}", correlation_id=f"{fill.instrument}:x",
                         ts_event_ns=stamp_ns, ts_init_ns=stamp_ns)


def funding_env(f: FundingSettled) -> Envelope:
    ns = f.settle_time_ms * 1_000_000
    return Envelope.root(f, key=f"funding:{f.instrument}:{f.settle_time_ms}",
                         correlation_id=f"{f.instrument}:funding", ts_event_ns=ns, ts_init_ns=ns)


def make_fill(exec_id: str, instrument: str, side: str, qty: str | Decimal, price: str | Decimal,
              fee: str | Decimal = "0", exec_time_ms: int = 0) -> OrderFilled:
    return OrderFilled(intent_id=f"i-{exec_id}", order_link_id=f"l-{exec_id}",
                       order_id=f"o-{exec_id}", exec_id=exec_id, instrument=instrument,
                       side=side, qty=Decimal(str(qty)), price=Decimal(str(price)),  # type: ignore[arg-type]
                       fee=Decimal(str(fee)), exec_time_ms=exec_time_ms)
