"""What the rules share: the target as it passes from rule to rule, the read-only context of one
decision, the outcome values, and the :class:`Rule` record that ``RULES`` orders.

Units: fractions are signed fractions of equity (0.5 = long, notional half of equity); equity and
prices are USDT (``Decimal``); quantities are base coin (``Decimal``, signed for positions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property

from tm_risk.domain.model import MarketModel
from tm_risk.domain.params import LotFilter, RiskParams
from tm_risk.domain.sizing import OrderLeg, intent_id
from tm_risk.domain.state import RiskState
from tm_risk.domain.var import VarResult


@dataclass(frozen=True, slots=True)
class ApprovedOrder:
    instrument: str
    bar_time_ms: int
    intent_id: str
    leg: OrderLeg
    reason: str


@dataclass(frozen=True, slots=True)
class Rejection:
    instrument: str
    bar_time_ms: int
    code: str       # bounded: a metric label
    reason: str     # for people


@dataclass(frozen=True, slots=True)
class Target:
    """One sized target on its way through the rules; each rule returns a changed copy.

    ``fraction``: the signed target fraction so far; ``notes``: why it changed (they become the
    orders' ``reason``); ``scale``: the VaR factor k applied to every target (1.0 = none);
    ``var``: VaR of the portfolio with this target (None until computed or without history);
    ``qty``: the lot-rounded target position (None before ``lot_rounding``); ``skipped``: a
    ``tiny_delta`` rejection (not final: the VaR rescale of other positions still goes out);
    ``orders`` and ``intended`` (instrument → expected position once the orders fill)."""

    fraction: float
    notes: tuple[str, ...] = ()
    scale: float = 1.0
    var: VarResult | None = None
    qty: Decimal | None = None
    skipped: Rejection | None = None
    orders: tuple[ApprovedOrder, ...] = ()
    intended: tuple[tuple[str, Decimal], ...] = ()

    def note(self, text: str) -> Target:
        return replace(self, notes=(*self.notes, text))


def exposures(state: RiskState, params: RiskParams, equity: Decimal) -> dict[str, float]:
    """Signed exposure fraction of each configured symbol: expected position × price / equity."""
    out = {}
    for s in params.symbols:
        price = state.price(s)
        out[s] = float(state.position(s) * price / equity) if price else 0.0
    return out


class Context:
    """What a rule may read for one target; the state is never changed. The derived values are
    computed once, on first use, and are valid only after the ``inputs`` rule passed (a known
    instrument, equity > 0, a price)."""

    def __init__(self, state: RiskState, params: RiskParams, instrument: str,
                 bar_time_ms: int) -> None:
        self.state, self.params = state, params
        self.instrument, self.bar_time_ms = instrument, bar_time_ms

    def reject(self, code: str, reason: str) -> Rejection:
        return Rejection(self.instrument, self.bar_time_ms, code, reason)

    @property
    def equity(self) -> Decimal:
        """Equity of the latest snapshot, USDT."""
        return self.state.equity  # type: ignore[return-value]  # checked by the inputs rule

    @property
    def equity_usdt(self) -> float:
        return float(self.equity)

    @property
    def price(self) -> Decimal:
        """Last close of the instrument, USDT per coin."""
        return self.state.price(self.instrument)  # type: ignore[return-value]

    @property
    def lot(self) -> LotFilter:
        return self.params.instruments[self.instrument]

    @property
    def current(self) -> Decimal:
        """Expected position of the instrument (base coin, signed)."""
        return self.state.position(self.instrument)

    @cached_property
    def exposures(self) -> dict[str, float]:
        """Signed exposure fraction of every configured symbol (:func:`exposures`)."""
        return exposures(self.state, self.params, self.equity)

    @cached_property
    def model(self) -> MarketModel:
        return self.state.market_model(self.params)

    @property
    def budget(self) -> float | None:
        """The instrument's HRP risk budget in [0, 1]."""
        return self.model.budgets[self.instrument]


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: ``apply(target, ctx)`` returns the target (changed or not) to pass on, or a
    :class:`Rejection` that ends the decision. ``summary``: one paragraph for the docs."""

    name: str
    apply: Callable[[Target, Context], Target | Rejection]
    summary: str


def rule(name: str, apply: Callable[[Target, Context], Target | Rejection],
         doc: str | None) -> Rule:
    """A :class:`Rule` whose summary is the first paragraph of ``doc`` (the rule module's
    docstring), on one line."""
    first = (doc or "").strip().split("\n\n")[0]
    return Rule(name, apply, " ".join(first.split()))


def cap(target: Target, limit: float, what: str) -> Target:
    """``target`` with |fraction| ≤ max(0, ``limit``), moved toward zero only (the sign never
    flips; a zero is +0.0), with a note ``"<what>: old -> new"`` when the cap binds."""
    limit = max(0.0, limit)
    mag = abs(target.fraction)
    sign = 1.0 if target.fraction >= 0 else -1.0
    if mag > limit:
        target = target.note(f"{what}: {mag:.4f} -> {limit:.4f}")
        mag = limit
    return replace(target, fraction=sign * mag if mag > 0 else 0.0)


def orders_for(instrument: str, bar_time_ms: int, legs: list[OrderLeg],
               reason: str) -> tuple[ApprovedOrder, ...]:
    """The legs as approved orders, each with its deterministic intent id."""
    return tuple(ApprovedOrder(instrument, bar_time_ms, intent_id(instrument, bar_time_ms, leg),
                               leg, reason) for leg in legs)
