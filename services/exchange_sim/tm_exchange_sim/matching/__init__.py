"""Pure matching core shared by the exchange sim and the in-process backtest venue.

No I/O imports: values in, state and events out, time only from :meth:`MatchingEngine.step`.
"""

from tm_exchange_sim.matching.costs import FeeSchedule, SlippageModel, round_to_tick
from tm_exchange_sim.matching.engine import MatchingEngine, signed_size, total_fees
from tm_exchange_sim.matching.errors import VenueError
from tm_exchange_sim.matching.instruments import DEFAULT_INSTRUMENTS, Instrument
from tm_exchange_sim.matching.models import (
                                             BUY,
                                             LIMIT,
                                             MARKET,
                                             SELL,
                                             Bar,
                                             Execution,
                                             Order,
                                             OrderRequest,
                                             Position,
)

__all__ = [
    "BUY", "DEFAULT_INSTRUMENTS", "LIMIT", "MARKET", "SELL", "Bar", "Execution", "FeeSchedule",
    "Instrument", "MatchingEngine", "Order", "OrderRequest", "Position", "SlippageModel",
    "VenueError", "round_to_tick", "signed_size", "total_fees",
]
