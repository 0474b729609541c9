"""Round trips ("trades") per instrument, derived from a run's fills and funding payments.

A trade opens when an instrument's position leaves zero and closes when it returns to zero.
Fills in the trade's direction add to it, opposite fills reduce it. The entry and exit prices
shown are the qty-weighted averages of the adding and of the reducing fills; the PnL of a
reduction is taken against the held position's average cost (as the portfolio accounts it). A fill that crosses zero
(a flip, e.g. long 1 → short 2) closes the trade with the part that brings the position to zero
and opens the next trade with the rest; its fee is split between the two in proportion to
quantity. A funding payment is charged to the trade open on its instrument when it settles.

PnL of a trade (USDT) = Σ reducing qty × (fill price − average cost) × direction − fees −
funding (a fee or funding payment > 0 is paid by the account). A trade still open at the end of
the run is marked at the last mark price (``marks``) and listed with ``exit_time_ms = None``.
Events are taken in the order they were recorded (the executor's stream order), which is the
order the portfolio accounted them.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tm_common.events.orders import FundingSettled, OrderFilled

ZERO = Decimal(0)
HOUR_MS = 3_600_000


@dataclass
class Trade:
    """One round trip. Money in USDT; times epoch ms UTC; ``qty`` is the largest absolute
    position the trade reached."""

    instrument: str
    side: str                                   # "long" or "short"
    entry_time_ms: int
    entry_qty: Decimal = ZERO                   # Σ qty of the fills that opened / added
    entry_notional: Decimal = ZERO
    exit_qty: Decimal = ZERO                    # Σ qty of the fills that reduced / closed
    exit_notional: Decimal = ZERO
    qty: Decimal = ZERO
    price_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    fills: int = 0
    exit_time_ms: int | None = None
    open_qty: Decimal = field(default=ZERO, repr=False)   # position still held (absolute)
    cost_price: Decimal = field(default=ZERO, repr=False)  # average cost of the held position
    mark_price: Decimal | None = None           # for a trade open at the end: the last mark

    @property
    def direction(self) -> int:
        return 1 if self.side == "long" else -1

    @property
    def entry_price(self) -> Decimal:
        return self.entry_notional / self.entry_qty if self.entry_qty else ZERO

    @property
    def exit_price(self) -> Decimal | None:
        return self.exit_notional / self.exit_qty if self.exit_qty else None

    @property
    def is_open(self) -> bool:
        return self.exit_time_ms is None

    @property
    def unrealised(self) -> Decimal:
        if not self.is_open or self.mark_price is None:
            return ZERO
        return self.open_qty * (self.mark_price - self.cost_price) * self.direction

    @property
    def pnl(self) -> Decimal:
        """Realised price PnL − fees − funding (+ the open rest marked, for an open trade)."""
        return self.price_pnl + self.unrealised - self.fees - self.funding

    def holding_hours(self, end_ms: int | None = None) -> float | None:
        end = self.exit_time_ms if self.exit_time_ms is not None else end_ms
        return None if end is None else (end - self.entry_time_ms) / HOUR_MS

    def _add(self, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        self.cost_price = (self.cost_price * self.open_qty + price * qty) / (self.open_qty + qty)
        self.entry_qty += qty
        self.entry_notional += qty * price
        self.open_qty += qty
        self.qty = max(self.qty, self.open_qty)
        self.fees += fee

    def _reduce(self, qty: Decimal, price: Decimal, fee: Decimal, at_ms: int) -> None:
        self.price_pnl += qty * (price - self.cost_price) * self.direction
        self.exit_qty += qty
        self.exit_notional += qty * price
        self.open_qty -= qty
        self.fees += fee
        if self.open_qty == 0:
            self.exit_time_ms = at_ms


def round_trips(events: Iterable[Any], marks: Mapping[str, Decimal] | None = None
                ) -> tuple[list[Trade], Decimal]:
    """The trades of a sequence of ``OrderFilled`` and ``FundingSettled`` bodies (other bodies
    are skipped), in recorded order. ``marks``: instrument → last mark price, for trades still
    open. Returns (trades ordered by entry time, funding paid while no trade was open)."""
    open_: dict[str, Trade] = {}
    done: list[Trade] = []
    stray = ZERO
    for ev in events:
        if isinstance(ev, FundingSettled):
            t = open_.get(ev.instrument)
            if t is None:
                stray += ev.payment
            else:
                t.funding += ev.payment
            continue
        if not isinstance(ev, OrderFilled) or ev.qty <= 0:
            continue
        sign = 1 if ev.side == "Buy" else -1
        qty, fee = ev.qty, ev.fee
        t = open_.get(ev.instrument)
        if t is not None and t.direction != sign:         # reduce, close or flip
            closing = min(qty, t.open_qty)
            part = fee * closing / qty
            t._reduce(closing, ev.price, part, ev.exec_time_ms)
            t.fills += 1
            qty, fee = qty - closing, fee - part
            if t.is_open:
                continue
            done.append(open_.pop(ev.instrument))
            if qty == 0:
                continue
            t = None
        if t is None:                                      # open (or the flip's new side)
            t = open_[ev.instrument] = Trade(ev.instrument, "long" if sign > 0 else "short",
                                             ev.exec_time_ms)
        t._add(qty, ev.price, fee)
        t.fills += 1
    for inst, t in open_.items():
        t.mark_price = (marks or {}).get(inst)
        done.append(t)
    done.sort(key=lambda x: (x.entry_time_ms, x.instrument))
    return done, stray


def trade_stats(trades: list[Trade]) -> dict[str, Any]:
    """Statistics over the closed trades (USDT, hours): count, win rate, profit factor (gross
    profit / gross loss; None without a losing trade), expectancy (mean PnL per trade),
    average and median holding time, best and worst trade. ``open``: trades still open."""
    closed = [t for t in trades if not t.is_open]
    pnl = [float(t.pnl) for t in closed]
    wins = [p for p in pnl if p > 0]
    losses = [p for p in pnl if p <= 0]
    hours = [t.holding_hours() or 0.0 for t in closed]
    gross_loss = -sum(losses)
    none = None
    return {
        "trades": len(closed), "open": len(trades) - len(closed),
        "wins": len(wins), "losses": len(losses),
        "win_rate": len(wins) / len(closed) if closed else none,
        "profit_factor": sum(wins) / gross_loss if gross_loss > 0 else none,
        "expectancy": statistics.fmean(pnl) if pnl else none,
        "avg_win": statistics.fmean(wins) if wins else none,
        "avg_loss": statistics.fmean(losses) if losses else none,
        "total_pnl": sum(pnl),
        "avg_holding_hours": statistics.fmean(hours) if hours else none,
        "median_holding_hours": statistics.median(hours) if hours else none,
        "best": max(pnl) if pnl else none, "worst": min(pnl) if pnl else none,
    }


def utc_iso(ms: int | None) -> str:
    """Epoch ms → ``YYYY-MM-DDTHH:MM:SSZ`` (UTC); empty for None."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


COLUMNS = ("instrument", "side", "entry_time_utc", "exit_time_utc", "qty", "entry_price",
           "exit_price", "fees", "funding", "pnl", "holding_hours", "fills", "status")


def trade_row(t: Trade, end_ms: int | None = None) -> dict[str, Any]:
    """One trade as plain values (floats, UTC ISO times): a CSV row, a JSON object."""
    exit_price = t.exit_price
    return {"instrument": t.instrument, "side": t.side,
            "entry_time_utc": utc_iso(t.entry_time_ms), "exit_time_utc": utc_iso(t.exit_time_ms),
            "qty": float(t.qty), "entry_price": float(t.entry_price),
            "exit_price": None if exit_price is None else float(exit_price),
            "fees": float(t.fees), "funding": float(t.funding), "pnl": float(t.pnl),
            "holding_hours": t.holding_hours(end_ms), "fills": t.fills,
            "status": "open" if t.is_open else "closed"}


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """``rows`` (from :func:`trade_row`) as CSV with a header; empty cells for None."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r[k] is None else _csv_num(r[k]) for k in COLUMNS})


def _csv_num(v: Any) -> Any:
    return f"{v:.10g}" if isinstance(v, float) else v
