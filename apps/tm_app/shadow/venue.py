"""The shadow book's venue: an in-process paper account on the exchange simulator's matching
engine, priced by the bars the book mirrors (the simulator's live feed).

It has no network client at all, which is how a shadow book can never send an order to a real
venue: the executor inside a book is built with this object as its ``venue`` (and an
``inprocess://`` URL), and :func:`require_paper` refuses anything else before a service is built.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tm_common.errors import ConfigError
from tm_common.events import BarClosed, FundingRateUpdated
from tm_common.history import HistoryBar
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.instruments_config import parse_instruments
from tm_exchange_sim.live import PushedFunding
from tm_exchange_sim.state import SimState

from tm_app.venue import InProcessBybit


class NotAPaperVenue(ConfigError):
    """A shadow book was given a venue that could reach an exchange."""


class PaperVenue(InProcessBybit):
    """A paper account whose marks are the closed bars pushed to it."""

    def __init__(self, symbols: tuple[str, ...], *, initial_balance: Decimal,
                 slippage_bps: Decimal, seed: int, instruments_file: Path | None = None,
                 history_dir: str | Path | None = None) -> None:
        """``history_dir``: where a symbol the project does not ship finds its instrument
        file (as the simulator's ``TM_SIM_HISTORY_DIR``); None: the shipped history."""
        super().__init__(SimState(ExchangeSimSettings.from_values(
            sim_feed="live", sim_symbols=list(symbols), sim_initial_balance=initial_balance,
            sim_slippage_bps=slippage_bps, sim_seed=seed,
            sim_instruments_file=instruments_file, sim_history_dir=history_dir)))
        self.endpoint = "inprocess://shadow-paper"

    def push(self, bars: list[BarClosed], funding: list[FundingRateUpdated]) -> None:
        """Take ``funding`` (published before ``bars``: a rate settling at the latest close
        settles on the position held then), then close ``bars`` (marks, resting orders)."""
        if funding:
            self.state.push_funding([PushedFunding(f.instrument, f.settle_time_ms, f.rate)
                                     for f in funding])
        if bars:
            self.state.push_bars([(b.instrument, HistoryBar(
                b.open_time_ms, str(b.open), str(b.high), str(b.low), str(b.close),
                str(b.volume))) for b in bars])
        self.drop_push_events()

    def follow(self, doc: object, source: str) -> list[str]:
        """Serve the filters of ``doc`` (an instruments-info answer: the paper run's file, as
        the relay keeps it) that differ from the ones served now, for the symbols the book
        trades; returns those symbols. A delisting already past (by the venue's clock) is
        carried out at once, a later one at its time.

        Raises:
            ValueError: ``doc`` is not an instruments-info answer (``source`` named).
        """
        try:
            specs = parse_instruments(doc, source=source)
        except ValueError as e:
            raise ValueError(str(e) if source in str(e) else f"{source}: {e}") from e
        return self.state.take_newer(specs)


def require_paper(venue: object) -> PaperVenue:
    """``venue`` if it is an in-process paper account; :class:`NotAPaperVenue` otherwise."""
    if not isinstance(venue, PaperVenue) or not venue.endpoint.startswith("inprocess://"):
        raise NotAPaperVenue(f"a shadow book trades only on its in-process paper account, "
                             f"not on {type(venue).__name__}")
    return venue
