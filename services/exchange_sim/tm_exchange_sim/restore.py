"""A venue restored from its journal (:mod:`tm_exchange_sim.journal`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tm_common.history import HistoryBar

from tm_exchange_sim.journal import Journal, JournalError
from tm_exchange_sim.live import PushedFunding
from tm_exchange_sim.routes_trade import trade_handlers
from tm_exchange_sim.state import SimState


def replay_journal(state: SimState, journal: Journal) -> int:
    """Apply ``journal``'s entries to ``state`` (a venue as it starts) in order, then record
    every later input in it; returns how many were replayed. The queued WebSocket events of the
    replay are dropped (nobody was connected to get them).

    Raises:
        JournalError: an unreadable line (named), an entry of a kind not known, or an input
            that was taken then and is refused now (not this venue's journal, or another
            version's).
    """
    entries = journal.read()
    handlers = trade_handlers(state)
    for n, e in enumerate(entries, 1):
        try:
            _apply(state, handlers, e)
        except (ValueError, KeyError, TypeError) as err:
            raise JournalError(f"venue journal {journal.path}: entry {n} ({e.get('kind')}) "
                               f"does not apply to this venue: {type(err).__name__}: {err}"
                               ) from err
    state.engine.pop_events()
    state.journal = journal
    return len(entries)


def _apply(state: SimState, handlers: dict, e: dict[str, Any]) -> None:
    kind = e["kind"]
    if kind == "trade":
        _as_then(e, lambda: handlers[(e["method"], e["path"])](e["params"]))
    elif kind == "transfer":
        _as_then(e, lambda: state.transfer(e["amount"]))
    elif kind == "bars":
        state.push_bars([(s, HistoryBar(**b)) for s, b in e["bars"]])
    elif kind == "funding":
        state.push_funding([PushedFunding(s, int(t), Decimal(r)) for s, t, r in e["rates"]])
    elif kind == "instruments":
        state.replace_instruments(e["doc"])
    elif kind == "reset":
        state.reset(e["start_ms"], None if e["initial_balance"] is None
                    else Decimal(e["initial_balance"]), e["seed"])
    elif kind == "clock":
        state.advance(e["to_ms"], e["steps"])
    else:
        raise ValueError(f"unknown kind {kind!r}")


def _as_then(e: dict[str, Any], call: Callable[[], object]) -> None:
    """Replay an input journaled with its ``outcome``: it must end as it did then (taken, or
    refused or failed)."""
    try:
        call()
    except Exception as err:  # noqa: BLE001 - judged against what happened then
        if e.get("outcome", "ok") == "ok":
            raise ValueError(f"taken then, refused now: {type(err).__name__}: {err}") from err
        # refused (or failed) then too: the venue answered it that way
    else:
        if e.get("outcome", "ok") != "ok":
            raise ValueError(f"{e['outcome']} then, taken now")
