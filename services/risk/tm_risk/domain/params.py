"""Risk parameters: one frozen value built from the service settings and passed down.

Fractions are of account equity (1.0 = notional equal to equity); money is USDT; times are ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from tm_common.events import InstrumentFilters
from tm_common.instruments import DELISTED_STATUSES, InstrumentSpec

H4_MS = 4 * 3600 * 1000


#: Bybit instruments-info filters of one instrument: the venue's spec as loaded, or the filters
#: an ``InstrumentsChanged`` event carries. ``qty_step``: quantities are multiples of it;
#: ``min_order_qty``/``max_order_qty``: bounds of a quantity (base coin); ``max_mkt_order_qty``:
#: the largest single market order; ``min_notional``: the smallest order value the venue accepts
#: (USDT, ``minNotionalValue``; Bybit's 110094 below it); ``delivery_time_ms``: the delisting the
#: venue has scheduled (ms UTC, ``deliveryTime``; 0 = none); ``status``: the venue's trading
#: status (``Trading``, or not: see the ``delisting`` rule).
LotFilter = InstrumentSpec | InstrumentFilters


@dataclass(frozen=True, slots=True)
class BreakerParams:
    """Circuit breaker settings.

    ``drawdown_limit``: trip when 1 − equity/peak exceeds it (0.05 = 5 %).
    ``stale_intervals``: trip when an instrument has had no bar for more than this many intervals.
    ``exec_failure_limit``: trip after this many consecutive executor rejections.
    ``cooldown_ms``: time in OPEN before HALF_OPEN (event time, ms; default 1 day).
    ``hold_bars``: HALF_OPEN → CLOSED after this many snapshot bars without a loss.
    ``half_open_factor``: targets are multiplied by it in HALF_OPEN (0..1).
    ``loss_tolerance``: in HALF_OPEN, a snapshot whose equity is below the previous snapshot's by
    more than this fraction is a new loss (→ OPEN).
    ``daily_loss_limit``: trip (hold ``daily_loss``) when the loss since the UTC day's first
    snapshot exceeds this fraction; 0 = off.
    ``cumulative_loss_limit``: trip (hold ``cumulative_loss``) when the loss since inception or
    the last recorded reset exceeds this fraction; 0 = off.
    """

    drawdown_limit: float = 0.05
    stale_intervals: int = 2
    exec_failure_limit: int = 3
    cooldown_ms: int = 6 * H4_MS
    hold_bars: int = 6
    half_open_factor: float = 0.5
    loss_tolerance: float = 0.001
    daily_loss_limit: float = 0.0
    cumulative_loss_limit: float = 0.0


@dataclass(frozen=True, slots=True)
class RiskParams:
    """Every risk rule's parameters (defaults are the documented ones).

    Sizing: ``min_notional_usdt`` and ``min_delta_fraction`` skip tiny order deltas (besides
    ``min_order_qty``). Limits: ``max_fraction`` (|target| per instrument, overridable per symbol
    in ``instrument_max_fraction``), ``max_notional_usdt`` (per instrument), ``gross_cap``
    (Σ|fraction|) and ``net_cap`` (|Σ fraction|). Allocation: HRP on the last ``window_bars``
    4h log returns once ``hrp_min_obs`` are available (equal budgets before). VaR: horizon
    ``var_horizon_bars`` bars at ``var_confidence``, limit ``var_limit`` (fraction of equity),
    needs ``var_min_obs`` returns; a fit that needs a scale below ``var_min_scale`` is rejected.
    Join: with ``join_targets`` the targets of bar t wait until every symbol's target of t and
    the portfolio snapshot of t are in, then are decided in ``symbols`` order (so decisions do
    not depend on the order in which the mesh delivers them); a later bar, a later snapshot, or a
    watchdog tick ``join_timeout_ms`` after bar t's close decides an incomplete set.
    Lot filters: ``instruments`` (the venue's, :mod:`tm_risk.instruments`); a symbol without one
    cannot be decided (:meth:`missing_instruments`; the handler waits for them). Delisting: a
    scheduled one allows no new exposure, and a zero target from ``delisting_lead_ms`` before it
    (the ``delisting`` rule); a listing whose bars have :meth:`ended` is neither stale data nor
    waited for by the join.
    """

    symbols: tuple[str, ...]
    instruments: Mapping[str, LotFilter]
    interval_ms: int = H4_MS
    min_notional_usdt: Decimal = Decimal(10)
    min_delta_fraction: float = 0.002
    max_fraction: float = 1.0
    instrument_max_fraction: Mapping[str, float] = field(default_factory=dict)
    max_notional_usdt: Decimal = Decimal(1_000_000)
    gross_cap: float = 2.0
    net_cap: float = 1.5
    window_bars: int = 180
    hrp_min_obs: int = 30
    var_horizon_bars: int = 6
    var_confidence: float = 0.99
    var_limit: float = 0.05
    var_min_obs: int = 60
    var_min_scale: float = 0.1
    breaker: BreakerParams = field(default_factory=BreakerParams)
    join_targets: bool = False
    join_timeout_ms: int = 60_000
    delisting_lead_ms: int = 86_400_000

    def __post_init__(self) -> None:
        if not 0 < self.var_confidence < 1:
            raise ValueError("var_confidence must be in (0, 1)")
        if self.var_min_obs < self.var_horizon_bars:
            raise ValueError("var_min_obs must be >= var_horizon_bars")
        if self.window_bars < max(self.var_min_obs, self.hrp_min_obs):
            raise ValueError("window_bars must be >= var_min_obs and hrp_min_obs")

    def missing_instruments(self) -> list[str]:
        """The traded symbols that have no lot filter yet (empty when every one has)."""
        return [s for s in self.symbols if s not in self.instruments]

    def ended(self, symbol: str, at_ms: int) -> bool:
        """Whether ``symbol``'s bars have ended for good at ``at_ms``: a delisting the venue
        carried out (its ``deliveryTime`` at or before ``at_ms``) or under way (``status``
        ``Delivering`` or ``Closed``)."""
        lot = self.instruments.get(symbol)
        return lot is not None and (lot.status in DELISTED_STATUSES
                                    or 0 < lot.delivery_time_ms <= at_ms)

    def bar_feeds(self, last_bar_end_ms: Mapping[str, int], now_ms: int) -> dict[str, int]:
        """``last_bar_end_ms`` without the instruments whose bars have :meth:`ended`: their
        silence is not stale data (with them, the breaker would trip at once and never cool
        down while the symbol stays configured)."""
        return {s: t for s, t in last_bar_end_ms.items() if not self.ended(s, now_ms)}

    def fraction_cap(self, instrument: str) -> float:
        """Largest |target fraction| for ``instrument`` (per-symbol override or ``max_fraction``)."""
        return self.instrument_max_fraction.get(instrument, self.max_fraction)
