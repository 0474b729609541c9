"""Performance statistics of the snapshot equity curve (ratios are floats, money stays Decimal).

Definitions, with ``r_i = E_i / E_{i-1} - 1`` the return of snapshot ``i`` (``E_0`` = the initial
equity), ``n`` returns and ``P`` periods per year (4h bars: 6 x 365 = 2190):

- Sharpe = ``mean(r) / stdev(r) x sqrt(P)`` with the sample standard deviation (n - 1), risk-free
  rate 0; undefined (None) for n < 2 or a zero deviation.
- Sortino = ``mean(r) / DD x sqrt(P)`` with the downside deviation
  ``DD = sqrt(sum(min(r, 0)^2) / n)`` (target 0); None when no return is negative.
- max drawdown = ``max_i (peak_i - E_i) / peak_i`` where ``peak_i`` = max(E_0..E_i).
- CAGR = ``(E_n / E_0)^(P / n) - 1`` (None if it overflows a float); Calmar = CAGR / max drawdown, None when the drawdown is 0.
- bar win rate = share of returns > 0 (the round-trip win rate lives in the ledger).
- turnover = traded notional / average snapshot equity (E_0 when there is no snapshot yet).
- external flows (deposits, withdrawals: :meth:`PerformanceTracker.flow`) are not returns: the
  equity the next return starts from, the peak and ``E_0`` are rebased by
  :func:`tm_quant.flows.rebase` (time-weighted), so the curve's statistics are per unit.

:func:`sharpe`, :func:`sortino`, :func:`max_drawdown` and :func:`calmar` compute them on a whole
series; :class:`PerformanceTracker` computes the same incrementally (Welford's mean/variance), so
the handler state stays small and a restart reproduces the same floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tm_quant.flows import rebase

BARS_PER_YEAR_4H = 6 * 365


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def sharpe(returns: Sequence[float], periods_per_year: float) -> float | None:
    n = len(returns)
    if n < 2:
        return None
    m = _mean(returns)
    var = sum((r - m) ** 2 for r in returns) / (n - 1)
    return None if var <= 0 else m / math.sqrt(var) * math.sqrt(periods_per_year)


def sortino(returns: Sequence[float], periods_per_year: float) -> float | None:
    n = len(returns)
    if n == 0:
        return None
    down = sum(min(r, 0.0) ** 2 for r in returns) / n
    return None if down <= 0 else _mean(returns) / math.sqrt(down) * math.sqrt(periods_per_year)


def max_drawdown(equity: Sequence[float]) -> float:
    peak, worst = -math.inf, 0.0
    for e in equity:
        peak = max(peak, e)
        if peak > 0:
            worst = max(worst, (peak - e) / peak)
    return worst


def cagr(first: float, last: float, n: int, periods_per_year: float) -> float | None:
    """Compound annual growth; None when undefined or too large for a float (a short history
    annualised: one 4h bar of +38 % compounds to ~1e306)."""
    if n <= 0 or first <= 0 or last <= 0:
        return None
    try:
        g = (last / first) ** (periods_per_year / n) - 1
    except OverflowError:
        return None
    return g if math.isfinite(g) else None


def calmar(equity: Sequence[float], periods_per_year: float) -> float | None:
    """``equity`` starts with the initial equity ``E_0``."""
    dd = max_drawdown(equity)
    g = cagr(equity[0], equity[-1], len(equity) - 1, periods_per_year) if equity else None
    return None if g is None or dd <= 0 else g / dd


@dataclass
class PerformanceTracker:
    """Running statistics of the snapshot equity curve. ``initial``: E_0 (USDT)."""

    initial: Decimal
    periods_per_year: float = BARS_PER_YEAR_4H
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    downside_sq: float = 0.0
    positive: int = 0
    last_equity: Decimal | None = None
    peak_equity: Decimal | None = None
    max_drawdown: float = 0.0
    equity_sum: Decimal = Decimal(0)
    snapshots: int = 0

    def __post_init__(self) -> None:
        if self.peak_equity is None:
            self.peak_equity = self.initial

    def add(self, equity: Decimal) -> tuple[Decimal, float]:
        """Record a snapshot's equity; returns (peak equity, drawdown) after it."""
        prev = self.initial if self.last_equity is None else self.last_equity
        if prev > 0:
            r = float(equity / prev - 1)
            self.n += 1
            delta = r - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (r - self.mean)
            self.downside_sq += min(r, 0.0) ** 2
            self.positive += r > 0
        self.last_equity = equity
        self.snapshots += 1
        self.equity_sum += equity
        assert self.peak_equity is not None
        self.peak_equity = max(self.peak_equity, equity)
        dd = drawdown(self.peak_equity, equity)
        self.max_drawdown = max(self.max_drawdown, dd)
        return self.peak_equity, dd

    def flow(self, amount: Decimal) -> None:
        """An external flow of ``amount`` (USDT, > 0 in) booked after the newest snapshot."""
        before = self.initial if self.last_equity is None else self.last_equity
        assert self.peak_equity is not None
        self.peak_equity = rebase(self.peak_equity, before, amount)
        if self.last_equity is not None:
            self.last_equity = rebase(self.last_equity, before, amount)
        self.initial = rebase(self.initial, before, amount)

    # -- statistics ------------------------------------------------------------------------
    def sharpe(self) -> float | None:
        if self.n < 2:
            return None
        var = self.m2 / (self.n - 1)
        return None if var <= 0 else self.mean / math.sqrt(var) * math.sqrt(self.periods_per_year)

    def sortino(self) -> float | None:
        if self.n == 0 or self.downside_sq <= 0:
            return None
        return self.mean / math.sqrt(self.downside_sq / self.n) * math.sqrt(self.periods_per_year)

    def cagr(self) -> float | None:
        if self.last_equity is None:
            return None
        return cagr(float(self.initial), float(self.last_equity), self.snapshots,
                    self.periods_per_year)

    def calmar(self) -> float | None:
        g = self.cagr()
        return None if g is None or self.max_drawdown <= 0 else g / self.max_drawdown

    def average_equity(self) -> Decimal:
        return self.initial if self.snapshots == 0 else self.equity_sum / self.snapshots

    def turnover(self, traded_notional: Decimal) -> float | None:
        avg = self.average_equity()
        return None if avg <= 0 else float(traded_notional / avg)

    def bar_win_rate(self) -> float | None:
        return None if self.n == 0 else self.positive / self.n

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"initial": str(self.initial), "periods_per_year": self.periods_per_year,
                "n": self.n, "mean": self.mean, "m2": self.m2, "downside_sq": self.downside_sq,
                "positive": self.positive,
                "last_equity": None if self.last_equity is None else str(self.last_equity),
                "peak_equity": str(self.peak_equity), "max_drawdown": self.max_drawdown,
                "equity_sum": str(self.equity_sum), "snapshots": self.snapshots}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PerformanceTracker:
        return cls(initial=Decimal(d["initial"]), periods_per_year=float(d["periods_per_year"]),
                   n=int(d["n"]), mean=float(d["mean"]), m2=float(d["m2"]),
                   downside_sq=float(d["downside_sq"]), positive=int(d["positive"]),
                   last_equity=None if d["last_equity"] is None else Decimal(d["last_equity"]),
                   peak_equity=Decimal(d["peak_equity"]), max_drawdown=float(d["max_drawdown"]),
                   equity_sum=Decimal(d["equity_sum"]), snapshots=int(d["snapshots"]))


def drawdown(peak: Decimal, equity: Decimal) -> float:
    """``(peak - equity) / peak`` as a float (0 when the peak is not positive)."""
    if peak <= 0:
        return 0.0
    return float((peak - equity) / peak)
