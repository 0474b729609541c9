"""Event factories for the risk tests and benchmark (deterministic; bar ``i`` opens at
``T0_MS + i × 4h`` and every event about bar ``i`` carries its close as ``ts_event_ns``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import lru_cache

import numpy as np
from tm_common.events import (
    BarClosed,
    Envelope,
    OrderFilled,
    OrderRejected,
    PortfolioSnapshotted,
    PortfolioValued,
    PositionSized,
    PositionView,
)
from tm_common.instruments import DEFAULT_INSTRUMENTS
from tm_common.testing.bars import SYMBOLS, T0_MS, open_ms
from tm_common.testing.bars import close_ns as end_ns

from tm_risk.commands import command_envelope
from tm_risk.domain.params import H4_MS, RiskParams
from tm_risk.handler import RiskHandler

START_PRICES = {"BTCUSDT": 40_000.0, "ETHUSDT": 2_000.0, "SOLUSDT": 50.0}


def random_closes(n: int, *, seed: int = 7, vol: float = 0.01,
                  symbols: Sequence[str] = SYMBOLS) -> dict[str, list[Decimal]]:
    """Correlated geometric random walks (4h vol ``vol``), closes rounded to 2 decimals."""
    rng = np.random.default_rng(seed)
    k = len(symbols)
    corr = np.full((k, k), 0.6) + 0.4 * np.eye(k)
    z = rng.standard_normal((n, k)) @ np.linalg.cholesky(corr).T * vol
    out = {}
    for j, s in enumerate(symbols):
        path = START_PRICES.get(s, 100.0) * np.exp(np.cumsum(z[:, j]))
        out[s] = [Decimal(f"{p:.2f}") for p in path]
    return out


def bar_env(instrument: str, i: int, close: Decimal | str | float) -> Envelope:
    c = Decimal(str(close))
    b = BarClosed(instrument=instrument, open_time_ms=open_ms(i), close_time_ms=open_ms(i) + H4_MS - 1,
                  open=c, high=c, low=c, close=c, volume=Decimal(1), source="replay")
    return Envelope.root(b, key=f"{instrument}:{b.open_time_ms}",
                         correlation_id=f"{instrument}:{b.open_time_ms}", ts_event_ns=end_ns(i),
                         ts_init_ns=end_ns(i))


def snapshot_env(i: int, equity: Decimal | str | float,
                 positions: Mapping[str, tuple[Decimal | str, Decimal | str]] | None = None,
                 *, peak: Decimal | str | None = None) -> Envelope:
    """Portfolio after bar ``i``: ``positions`` instrument → (qty, mark price)."""
    eq = Decimal(str(equity))
    views = tuple(PositionView(instrument=s, qty=Decimal(str(q)), avg_price=Decimal(str(m)),
                               mark_price=Decimal(str(m)), unrealised_pnl=Decimal(0))
                  for s, (q, m) in sorted((positions or {}).items()))
    pk = Decimal(str(peak)) if peak is not None else eq
    body = PortfolioSnapshotted(bar_time_ms=open_ms(i), equity=eq, cash=eq, realised_pnl=Decimal(0),
                                unrealised_pnl=Decimal(0), fees=Decimal(0), funding=Decimal(0),
                                peak_equity=pk, drawdown=float(1 - eq / pk) if pk else 0.0,
                                positions=views)
    return Envelope.root(body, key=f"snapshot:{open_ms(i)}:{eq}", correlation_id=f"portfolio:{open_ms(i)}",
                         ts_event_ns=end_ns(i), ts_init_ns=end_ns(i))


def valuation_env(at_ms: int, equity: Decimal | str | float, *,
                  peak: Decimal | str | float | None = None) -> Envelope:
    """An intra-bar valuation at ``at_ms`` (ms) as the portfolio publishes it on
    ``portfolio.valuation`` (a root here: its id from the time and equity)."""
    eq = Decimal(str(equity))
    pk = Decimal(str(peak)) if peak is not None else eq
    body = PortfolioValued(at_ms=at_ms, equity=eq, unrealised_pnl=Decimal(0), peak_equity=pk,
                           drawdown=float(1 - eq / pk) if pk else 0.0)
    return Envelope.root(body, key=f"valuation:{at_ms}:{eq}", correlation_id=f"valuation:{at_ms}",
                         ts_event_ns=at_ms * 1_000_000, ts_init_ns=at_ms * 1_000_000)


def target_env(instrument: str, i: int, fraction: float, *, tier: str = "FULL_RL",
               tag: str = "") -> Envelope:
    body = PositionSized(instrument=instrument, bar_time_ms=open_ms(i), target_fraction=fraction,
                         tier=tier, reason="test")  # type: ignore[arg-type]
    return Envelope.root(body, key=f"{instrument}:{open_ms(i)}:{fraction}:{tag}",
                         correlation_id=f"{instrument}:{open_ms(i)}", ts_event_ns=end_ns(i),
                         ts_init_ns=end_ns(i))


def exec_rejected_env(instrument: str, i: int, n: int, *, source: str = "executor") -> Envelope:
    body = OrderRejected(instrument=instrument, bar_time_ms=open_ms(i), reason="venue: 10001",
                         intent_id=f"intent-{n}", source=source, ret_code=10001)  # type: ignore[arg-type]
    return Envelope.root(body, key=f"rej:{instrument}:{i}:{n}", correlation_id=f"{instrument}:{open_ms(i)}",
                         ts_event_ns=end_ns(i), ts_init_ns=end_ns(i))


def exec_filled_env(instrument: str, i: int, n: int) -> Envelope:
    body = OrderFilled(intent_id=f"intent-{n}", order_link_id=f"l{n}", order_id=f"o{n}",
                       exec_id=f"e{n}", instrument=instrument, side="Buy", qty=Decimal("0.1"),
                       price=Decimal(100), fee=Decimal(0), exec_time_ms=open_ms(i))
    return Envelope.root(body, key=f"fill:{n}", correlation_id=f"{instrument}:{open_ms(i)}",
                         ts_event_ns=end_ns(i), ts_init_ns=end_ns(i))


def command_env(action: str, n: int = 0, *, at_ms: int | None = None, reason: str = "") -> Envelope:
    """A command with a fixed id (``cmd-<action>-<n>``); ``at_ms`` = observed wall time."""
    now_ns = (at_ms if at_ms is not None else T0_MS) * 1_000_000
    return command_envelope(action, reason=reason, now_ns=now_ns,  # type: ignore[arg-type]
                            command_id=f"cmd-{action}-{n}")


def history(n: int, *, seed: int = 7, vol: float = 0.01,
            symbols: Sequence[str] = SYMBOLS) -> tuple[list[Envelope], dict[str, list[Decimal]]]:
    """``n`` bars of every symbol, interleaved by time, and the closes."""
    closes = random_closes(n, seed=seed, vol=vol, symbols=symbols)
    return [bar_env(s, i, closes[s][i]) for i in range(n) for s in symbols], closes


# -- a warmed-up handler ------------------------------------------------------------------------
N_BARS = 200
EQUITY = Decimal(100_000)


def make_params(**kw) -> RiskParams:
    """Default parameters on the three symbols with the exchange-sim lot filters."""
    return RiskParams(symbols=SYMBOLS, instruments=DEFAULT_INSTRUMENTS, **kw)


@lru_cache(maxsize=8)
def _warm(vol: float, n: int) -> tuple[bytes, tuple]:
    h = RiskHandler(make_params())
    bars, closes = history(n, vol=vol)
    for e in bars:
        h.process(e)
    h.process(snapshot_env(n - 1, EQUITY))
    return h.snapshot(), tuple((s, tuple(v)) for s, v in closes.items())


def warm_handler(params: RiskParams | None = None, *, vol: float = 0.01,
                 n: int = N_BARS) -> tuple[RiskHandler, dict[str, list[Decimal]]]:
    """(handler, closes) after ``n`` bars of :func:`history` and a flat snapshot of 100 000 USDT
    at bar n − 1 (the warm state is computed once per (vol, n) and restored)."""
    state, closes = _warm(vol, n)
    h = RiskHandler(params or make_params())
    h.restore(state)
    return h, {s: list(v) for s, v in closes}
