"""Typed, frozen events and the envelope. Importing this package registers every event type."""

from tm_common.events.base import (
    Envelope,
    EventBody,
    deterministic_id,
    event_types,
    register,
)
from tm_common.events.market import (
    BarClosed,
    DvolUpdated,
    FundingRateUpdated,
    InstrumentFilters,
    InstrumentsChanged,
    MarkUpdated,
)
from tm_common.events.models import ModelPromoted
from tm_common.events.orders import (
    BalanceReconciled,
    FundingSettled,
    OrderApproved,
    OrderFilled,
    OrderRejected,
    OrderReported,
    PositionReconciled,
)
from tm_common.events.portfolio import PortfolioSnapshotted, PortfolioValued, PositionView
from tm_common.events.risk import BreakerStateChanged
from tm_common.events.signals import PositionSized, RegimeDetected, SignalGenerated

__all__ = [
    "BalanceReconciled", "BarClosed", "BreakerStateChanged", "DvolUpdated", "Envelope", "EventBody", "FundingRateUpdated",
    "FundingSettled", "InstrumentFilters", "InstrumentsChanged", "MarkUpdated", "PortfolioValued",
    "ModelPromoted", "OrderApproved", "OrderFilled", "OrderRejected", "OrderReported",
    "PortfolioSnapshotted", "PositionReconciled", "PositionSized", "PositionView",
    "RegimeDetected", "SignalGenerated", "deterministic_id", "event_types", "register",
]
