"""The circuit breaker: an explicit transition table and pure evaluation functions.

States: CLOSED (normal), OPEN (flat: every position is closed, no new exposure), HALF_OPEN
(trading with targets × ``half_open_factor``). :data:`TRANSITIONS` is the whole machine; any
(state, trigger) pair not in it raises :class:`IllegalTransition`. OPEN is left only by
``cooldown_elapsed`` (→ HALF_OPEN) or ``manual_reset`` (→ CLOSED).

Holds. An OPEN breaker carries a *hold* (:data:`HOLDS`, ``Breaker.hold``) naming what keeps it
open: ``""`` for the automatic trips (drawdown, stale data, executor failures, a HALF_OPEN loss),
which recover by cool-down; ``daily_loss`` (cool-down only once the UTC day of the trip has
ended); ``cumulative_loss``, ``manual`` and ``kill``, which never recover by themselves: only a
``manual_reset`` leaves them. ``kill``, ``daily_loss`` and ``cumulative_loss`` also fire in OPEN
(OPEN → OPEN, flattening again) when they outrank the current hold (:data:`HOLD_RANK`), so a kill
during a drawdown trip takes the automatic recovery away.

Triggers and their exact rules (``now_ms`` is a clock passed in: event time in the handler):

- ``drawdown``: on a portfolio snapshot (not in OPEN), 1 − equity / peak > ``drawdown_limit``,
  where peak is the highest snapshot equity since the breaker last left OPEN (it is re-based to the
  latest equity on leaving OPEN, otherwise a drawdown that a flat book cannot recover would trip
  the breaker again at once, forever). Also on an intra-bar valuation (:func:`on_mark`, live
  only): its equity against the same peak; a valuation never moves the peak.
- ``stale_data``: (not in OPEN) some instrument whose bars have been seen has had no bar for more
  than ``stale_intervals`` intervals: data_now − end of its last bar > stale_intervals × interval.
  ``data_now_ms`` is the market-data clock: in the handler the latest bar end seen on ``md.bar``
  (or the wall time of a live watchdog ``tick``), not the latest time of any stream. ``md.bar`` is
  ordered by ingest, while the consumer may read a backlog of snapshots or targets ahead of the
  bars of the same period; with the any-stream clock such a backlog would look like a silent feed.
- ``exec_failures``: (not in OPEN) ``exec_failure_limit`` consecutive executor rejections; an
  accepted or filled order resets the count; every transition resets it.
- ``manual_trip`` / ``manual_reset``: an operator command (``tm breaker trip|reset``).
- ``kill``: an operator command (``tm kill``): OPEN with the hold ``kill`` from any state.
- ``daily_loss`` / ``cumulative_loss``: on a portfolio snapshot or an intra-bar valuation, the
  loss since the start of the UTC day / since inception or the last recorded rebase exceeds its
  limit (:mod:`tm_risk.domain.loss_limits`); neither baseline moves when the breaker closes
  again, nor on a valuation.
- ``cooldown_elapsed``: in OPEN without a hold (or with ``daily_loss`` once its UTC day has
  ended), now − time of entering OPEN ≥ ``cooldown_ms`` and no instrument is stale (a stale feed
  keeps the breaker OPEN).
- ``held``: in HALF_OPEN, ``hold_bars`` snapshots of new bars without a loss.
- ``loss``: in HALF_OPEN, a snapshot equity below the previous snapshot's × (1 − loss_tolerance).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from tm_risk.domain.params import BreakerParams


class State(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class Trigger(StrEnum):
    DRAWDOWN = "drawdown"
    STALE_DATA = "stale_data"
    EXEC_FAILURES = "exec_failures"
    MANUAL_TRIP = "manual_trip"
    MANUAL_RESET = "manual_reset"
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    HELD = "held"
    LOSS = "loss"
    KILL = "kill"
    DAILY_LOSS = "daily_loss"
    CUMULATIVE_LOSS = "cumulative_loss"


C, O, H = State.CLOSED, State.OPEN, State.HALF_OPEN
T = Trigger

TRANSITIONS: Mapping[tuple[State, Trigger], State] = MappingProxyType({
    (C, T.DRAWDOWN): O, (C, T.STALE_DATA): O, (C, T.EXEC_FAILURES): O, (C, T.MANUAL_TRIP): O,
    (H, T.DRAWDOWN): O, (H, T.STALE_DATA): O, (H, T.EXEC_FAILURES): O, (H, T.MANUAL_TRIP): O,
    (H, T.LOSS): O, (H, T.HELD): C, (H, T.MANUAL_RESET): C,
    (O, T.COOLDOWN_ELAPSED): H, (O, T.MANUAL_RESET): C,
    (C, T.KILL): O, (H, T.KILL): O, (O, T.KILL): O,
    (C, T.DAILY_LOSS): O, (H, T.DAILY_LOSS): O, (O, T.DAILY_LOSS): O,
    (C, T.CUMULATIVE_LOSS): O, (H, T.CUMULATIVE_LOSS): O, (O, T.CUMULATIVE_LOSS): O,
})

#: The hold a trigger puts on an OPEN breaker ("" = none: recovers by cool-down).
HOLDS: Mapping[Trigger, str] = MappingProxyType({
    T.KILL: "kill", T.MANUAL_TRIP: "manual", T.CUMULATIVE_LOSS: "cumulative_loss",
    T.DAILY_LOSS: "daily_loss"})
#: Strength of a hold: a trigger fires in OPEN only when its hold outranks the current one.
HOLD_RANK: Mapping[str, int] = MappingProxyType({
    "": 0, "daily_loss": 1, "cumulative_loss": 2, "manual": 3, "kill": 4})
DAY_MS = 86_400_000

#: Value of the breaker state gauge: severity order.
STATE_CODE: Mapping[State, int] = MappingProxyType({C: 0, H: 1, O: 2})


class IllegalTransition(ValueError):
    """A trigger that the table does not allow in the current state."""

    def __init__(self, state: State, trigger: Trigger) -> None:
        super().__init__(f"breaker: trigger {trigger.value!r} is illegal in state {state.value}")
        self.state, self.trigger = state, trigger


def can_fire(state: State, trigger: Trigger) -> bool:
    return (state, trigger) in TRANSITIONS


def next_state(state: State, trigger: Trigger) -> State:
    """The table lookup; raises :class:`IllegalTransition` for a pair not in the table."""
    try:
        return TRANSITIONS[(State(state), Trigger(trigger))]
    except KeyError:
        raise IllegalTransition(State(state), Trigger(trigger)) from None


@dataclass(frozen=True, slots=True)
class Transition:
    """One transition (becomes a ``BreakerStateChanged`` event)."""

    from_state: State
    to_state: State
    trigger: Trigger
    reason: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Breaker:
    """The breaker's state and the values its triggers need (equity in USDT, times in ms)."""

    state: State = State.CLOSED
    since_ms: int = 0
    peak_equity: Decimal | None = None
    last_equity: Decimal | None = None
    last_snapshot_bar_ms: int | None = None
    held_bars: int = 0
    failures: int = 0
    hold: str = ""


def fire(b: Breaker, trigger: Trigger, reason: str, now_ms: int) -> tuple[Breaker, Transition]:
    """Apply ``trigger`` (raises :class:`IllegalTransition` if the table has no such pair).
    Resets the failure and held-bar counts; leaving OPEN re-bases the drawdown peak and lifts the
    hold; entering OPEN sets the trigger's hold (:data:`HOLDS`)."""
    to = next_state(b.state, trigger)
    peak = b.last_equity if b.state == State.OPEN and to != State.OPEN else b.peak_equity
    hold = HOLDS.get(Trigger(trigger), "") if to == State.OPEN else ""
    nb = replace(b, state=to, since_ms=now_ms, peak_equity=peak, held_bars=0, failures=0,
                 hold=hold)
    return nb, Transition(b.state, to, Trigger(trigger), reason, now_ms)


def outranks(b: Breaker, trigger: Trigger) -> bool:
    """May ``trigger`` fire now? Outside OPEN: when the table allows it; in OPEN: only a hold
    stronger than the current one (a kill over a drawdown trip, never a second daily trip)."""
    if not can_fire(b.state, trigger):
        return False
    return b.state != State.OPEN or HOLD_RANK[HOLDS.get(trigger, "")] > HOLD_RANK[b.hold]


def may_cool_down(b: Breaker, now_ms: int) -> bool:
    """Does the hold allow the automatic recovery? None: yes; ``daily_loss``: once the UTC day
    of the trip has ended; any other hold: never (``manual_reset`` only)."""
    if b.hold == "":
        return True
    return b.hold == "daily_loss" and now_ms // DAY_MS > b.since_ms // DAY_MS


def _fire_into(b: Breaker, trigger: Trigger, reason: str, now_ms: int,
               out: list[Transition]) -> Breaker:
    b, t = fire(b, trigger, reason, now_ms)
    out.append(t)
    return b


def drawdown(equity: Decimal, peak: Decimal | None) -> float:
    """1 − equity / peak (0 when there is no positive peak)."""
    if peak is None or peak <= 0:
        return 0.0
    return float(1 - equity / peak)


def on_snapshot(b: Breaker, equity: Decimal, bar_time_ms: int, now_ms: int,
                p: BreakerParams, breach: tuple[Trigger, str] | None = None
                ) -> tuple[Breaker, list[Transition]]:
    """A portfolio snapshot (equity USDT, bar open time ms): loss-limit, drawdown, loss and held
    triggers. ``breach``: the loss limit this snapshot exceeds, if any
    (:func:`tm_risk.domain.loss_limits.breach`); it fires first, in OPEN too, if it outranks the
    current hold."""
    out: list[Transition] = []
    prev = b.last_equity
    new_bar = b.last_snapshot_bar_ms is None or bar_time_ms > b.last_snapshot_bar_ms
    peak = b.peak_equity
    if b.state != State.OPEN:
        peak = equity if peak is None else max(peak, equity)
    last_bar = bar_time_ms if new_bar else b.last_snapshot_bar_ms
    b = replace(b, peak_equity=peak, last_equity=equity, last_snapshot_bar_ms=last_bar)
    if breach is not None and outranks(b, breach[0]):
        return _fire_into(b, breach[0], breach[1], now_ms, out), out
    if b.state == State.OPEN:
        return b, out
    dd = drawdown(equity, peak)
    if dd > p.drawdown_limit:
        return _fire_into(b, T.DRAWDOWN, f"drawdown {dd:.2%} from peak {peak} USDT exceeds "
                          f"{p.drawdown_limit:.2%} (equity {equity} USDT)", now_ms, out), out
    if b.state == State.HALF_OPEN:
        if prev is not None and equity < prev * (1 - Decimal(repr(p.loss_tolerance))):
            return _fire_into(b, T.LOSS, f"loss in HALF_OPEN: equity {equity} < previous {prev} "
                              "USDT", now_ms, out), out
        if new_bar:
            b = replace(b, held_bars=b.held_bars + 1)
            if b.held_bars >= p.hold_bars:
                b = _fire_into(b, T.HELD, f"held {b.held_bars} bars without a loss", now_ms, out)
    return b, out


def on_mark(b: Breaker, equity: Decimal, now_ms: int, p: BreakerParams,
            breach: tuple[Trigger, str] | None = None) -> tuple[Breaker, list[Transition]]:
    """An intra-bar valuation (equity USDT at event time ``now_ms``, between two bar closes):
    the loss-limit ``breach`` first (in OPEN too, if it outranks the hold), then the drawdown
    against the snapshot peak (not in OPEN). It moves nothing else: the peak, the last equity
    and the held bars are bar-close quantities, and the HALF_OPEN ``loss`` rule (a fall from the
    previous *snapshot*) stays a bar-close rule."""
    out: list[Transition] = []
    if breach is not None and outranks(b, breach[0]):
        return _fire_into(b, breach[0], f"{breach[1]}, on an intra-bar mark", now_ms, out), out
    if b.state == State.OPEN:
        return b, out
    dd = drawdown(equity, b.peak_equity)
    if dd > p.drawdown_limit:
        return _fire_into(b, T.DRAWDOWN, f"intra-bar drawdown {dd:.2%} from peak "
                          f"{b.peak_equity} USDT exceeds {p.drawdown_limit:.2%} (equity {equity} "
                          "USDT on an intra-bar mark)", now_ms, out), out
    return b, out


def stale_instruments(last_bar_end_ms: Mapping[str, int], now_ms: int, interval_ms: int,
                      stale_intervals: int) -> list[str]:
    """Instruments whose last bar ended more than ``stale_intervals`` intervals before now."""
    limit = stale_intervals * interval_ms
    return sorted(s for s, end in last_bar_end_ms.items() if now_ms - end > limit)


def on_clock(b: Breaker, now_ms: int, last_bar_end_ms: Mapping[str, int], interval_ms: int,
             p: BreakerParams, data_now_ms: int | None = None) -> tuple[Breaker, list[Transition]]:
    """Time-based triggers: stale data at ``data_now_ms`` (default ``now_ms``; CLOSED/HALF_OPEN)
    and cool-down at ``now_ms`` (OPEN)."""
    out: list[Transition] = []
    data_now = now_ms if data_now_ms is None else data_now_ms
    stale = stale_instruments(last_bar_end_ms, data_now, interval_ms, p.stale_intervals)
    if b.state == State.OPEN:
        if now_ms - b.since_ms >= p.cooldown_ms and not stale and may_cool_down(b, now_ms):
            b = _fire_into(b, T.COOLDOWN_ELAPSED, f"cool-down {p.cooldown_ms} ms elapsed",
                           now_ms, out)
    elif stale:
        ages = ", ".join(f"{s} ({(data_now - last_bar_end_ms[s]) / interval_ms:.1f} intervals)"
                         for s in stale)
        b = _fire_into(b, T.STALE_DATA, f"no bar for more than {p.stale_intervals} intervals: "
                       f"{ages}", now_ms, out)
    return b, out


def on_exec_result(b: Breaker, rejected: bool, now_ms: int, reason: str,
                   p: BreakerParams) -> tuple[Breaker, list[Transition]]:
    """An executor outcome: a rejection counts, an accepted/filled order resets the count."""
    out: list[Transition] = []
    if not rejected:
        return (replace(b, failures=0) if b.failures else b), out
    b = replace(b, failures=b.failures + 1)
    if b.failures >= p.exec_failure_limit and can_fire(b.state, T.EXEC_FAILURES):
        b = _fire_into(b, T.EXEC_FAILURES, f"{b.failures} consecutive executor rejections; last: "
                       f"{reason}", now_ms, out)
    return b, out
