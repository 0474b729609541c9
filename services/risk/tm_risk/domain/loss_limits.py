"""Loss limits that do not reset: a daily one (UTC day) and a cumulative one.

The book (:class:`LossBook`) keeps two baselines, both moved only here, never by a breaker
transition (the drawdown peak, by contrast, is re-based whenever the breaker leaves OPEN):

- ``day_start_equity``: the equity of the first snapshot of the current UTC day (the day of the
  snapshot's event time: a bar closing at 00:00 UTC opens the new day). Daily loss =
  1 − equity / day_start_equity.
- ``baseline_equity``: the equity of the first snapshot ever (inception), or the equity at the
  last :func:`rebase` (an operator's reset, with its reason and time, kept in the book).
  Cumulative loss = 1 − equity / baseline_equity.

:func:`breach` names the limit a snapshot exceeds (strictly greater; a limit of 0 is off): the
cumulative one first (its hold is the stronger, ``tm_risk.domain.breaker.HOLD_RANK``).

Intra-bar valuations (:func:`intrabar_breach`, live only) are judged against the same baselines
and never move them: the baselines stay bar-close equities. A valuation on a UTC day whose first
snapshot has not arrived yet is judged on the cumulative limit only (the daily baseline is then
the previous day's).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from tm_risk.domain.breaker import DAY_MS, Trigger


@dataclass(frozen=True, slots=True)
class LossBook:
    """Baselines of the loss limits (equity USDT, times ms since the epoch, UTC)."""

    day_index: int | None = None
    day_start_equity: Decimal | None = None
    baseline_equity: Decimal | None = None
    baseline_at_ms: int = 0
    baseline_reason: str = "inception"


def loss(equity: Decimal, base: Decimal | None) -> float:
    """1 − equity / base (0 when there is no positive base; negative for a gain)."""
    if base is None or base <= 0:
        return 0.0
    return float(1 - equity / base)


def on_equity(book: LossBook, equity: Decimal, now_ms: int) -> LossBook:
    """The book after a snapshot of ``equity`` at event time ``now_ms``: the first snapshot sets
    the inception baseline, the first of each UTC day the day's start."""
    day = now_ms // DAY_MS
    if book.baseline_equity is None:
        book = replace(book, baseline_equity=equity, baseline_at_ms=now_ms,
                       baseline_reason="inception")
    if book.day_index is None or day > book.day_index:
        book = replace(book, day_index=day, day_start_equity=equity)
    return book


def breach(book: LossBook, equity: Decimal, daily_limit: float,
           cumulative_limit: float) -> tuple[Trigger, str] | None:
    """The limit ``equity`` exceeds, as (trigger, reason), or None. Limits are fractions of the
    baseline (0.03 = 3 %); 0 switches a limit off."""
    cum = loss(equity, book.baseline_equity)
    if cumulative_limit > 0 and cum > cumulative_limit:
        return Trigger.CUMULATIVE_LOSS, (
            f"cumulative loss {cum:.2%} since {book.baseline_reason} (equity "
            f"{book.baseline_equity} USDT) exceeds {cumulative_limit:.2%} (equity {equity} USDT)")
    day = loss(equity, book.day_start_equity)
    if daily_limit > 0 and day > daily_limit:
        return Trigger.DAILY_LOSS, (
            f"daily loss {day:.2%} since the UTC day's start (equity {book.day_start_equity} "
            f"USDT) exceeds {daily_limit:.2%} (equity {equity} USDT)")
    return None


def intrabar_breach(book: LossBook, equity: Decimal, at_ms: int, daily_limit: float,
                    cumulative_limit: float) -> tuple[Trigger, str] | None:
    """:func:`breach` for an intra-bar valuation of ``equity`` at ``at_ms``: the book is not
    moved; the daily limit applies only within the UTC day of its baseline."""
    same_day = book.day_index is not None and at_ms // DAY_MS == book.day_index
    return breach(book, equity, daily_limit if same_day else 0.0, cumulative_limit)


def rebase(book: LossBook, equity: Decimal, now_ms: int, reason: str, *,
           cumulative: bool, daily: bool) -> LossBook:
    """An operator's reset: move the cumulative baseline (recording ``reason`` and the time)
    and/or the day's start to ``equity``."""
    if cumulative:
        book = replace(book, baseline_equity=equity, baseline_at_ms=now_ms,
                       baseline_reason=f"reset at {now_ms} ms: {reason}")
    if daily:
        book = replace(book, day_start_equity=equity, day_index=now_ms // DAY_MS)
    return book
