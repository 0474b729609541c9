"""The risk handler on the in-memory bus with the real consumer loop (state saved with acks)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tm_common.bus.streams import (
    EXEC_REPORT,
    MD_BAR,
    PORTFOLIO_SNAPSHOT,
    RISK_BREAKER,
    RISK_ORDER,
    RISK_REJECTION,
    SIZING_TARGET,
)
from tm_risk.commands import RISK_COMMAND
from tm_risk.domain.breaker import State
from tm_risk.domain.params import BreakerParams
from tm_risk.domain.sizing import flatten_intent_id
from tm_risk.testing import (
    EQUITY,
    SYMBOLS,
    bar_env,
    command_env,
    exec_filled_env,
    exec_rejected_env,
    history,
    make_params,
    snapshot_env,
    target_env,
)

from .conftest import STATE_KEY, BusRig

INPUTS = [RISK_COMMAND, SIZING_TARGET, PORTFOLIO_SNAPSHOT, MD_BAR, EXEC_REPORT]
N = 120                                   # bars of history (VaR needs 60, HRP 30)
LAST = N - 1


class Rig(BusRig):
    """The rig on ``INPUTS``, bar by bar: ``warm_up()``, then ``next_bar()``; ``closes`` holds
    each symbol's closes so far."""

    def __init__(self, params=None) -> None:
        self.closes: dict[str, list[Decimal]] = {}
        self.bar = -1
        super().__init__(INPUTS, params)

    async def warm_up(self, n: int = N) -> None:
        bars, self.closes = history(n)
        for e in bars:
            await self.bus.publish(MD_BAR, e)
        await self.consumer.run_until_idle()
        self.bar = n - 1
        await self.send(PORTFOLIO_SNAPSHOT, snapshot_env(self.bar, EQUITY))

    async def next_bar(self, symbols=SYMBOLS) -> int:
        self.bar += 1
        for s in symbols:
            self.closes[s].append(self.closes[s][-1])
            await self.send(MD_BAR, bar_env(s, self.bar, self.closes[s][-1]))
        return self.bar

    def price(self, s: str) -> Decimal:
        return self.closes[s][-1]


@pytest.fixture
async def rig():
    r = Rig()
    await r.warm_up()
    return r


async def _open_positions(rig: Rig) -> dict[str, Decimal]:
    """Targets for the three instruments, then a snapshot in which they are filled."""
    for s, f in zip(SYMBOLS, (0.4, -0.3, 0.2)):
        await rig.send(SIZING_TARGET, target_env(s, rig.bar, f))
    orders = await rig.bodies(RISK_ORDER)
    assert [o.instrument for o in orders] == list(SYMBOLS) and not any(o.reduce_only for o in orders)
    pos = {o.instrument: o.target_qty for o in orders}
    await rig.next_bar()
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(
        rig.bar, EQUITY, {s: (q, rig.price(s)) for s, q in pos.items()}))
    return pos


async def test_drawdown_opens_flattens_every_position_and_rejects_every_later_target(rig):
    pos = await _open_positions(rig)
    await rig.next_bar()
    n_orders = len(await rig.out(RISK_ORDER))
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar, Decimal(94_000),
                                                    {s: (q, rig.price(s)) for s, q in pos.items()}))
    (brk_env,) = await rig.out(RISK_BREAKER)
    b = brk_env.body
    assert (b.from_state, b.to_state, b.trigger) == ("CLOSED", "OPEN", "drawdown")
    assert "6.00%" in b.reason
    flat = (await rig.out(RISK_ORDER))[n_orders:]
    assert {o.body.instrument for o in flat} == set(SYMBOLS)
    for o in flat:
        q = pos[o.body.instrument]
        assert o.body.reduce_only and o.body.qty == abs(q) and o.body.target_qty == 0
        assert o.body.side == ("Sell" if q > 0 else "Buy")
        # the id derives from the breaker event's id, exactly as the consumer assigned it
        assert o.body.intent_id == flatten_intent_id(brk_env.event_id, o.body.instrument, 0)
        assert o.causation_id == brk_env.causation_id
    # breaker OPEN means flat: every later target is rejected, nothing else approved
    for s, f in zip(SYMBOLS, (0.5, -0.5, 0.0)):
        await rig.send(SIZING_TARGET, target_env(s, rig.bar, f, tag="later"))
    rejected = await rig.bodies(RISK_REJECTION)
    assert [(r.instrument, r.reason, r.source) for r in rejected] == [
        (s, "breaker OPEN", "risk") for s in SYMBOLS]
    assert len(await rig.out(RISK_ORDER)) == n_orders + len(flat)
    saved = await rig.bus.load_state(STATE_KEY)
    assert b'"state":"OPEN"' in saved


async def test_open_reflattens_a_residual_position_once_per_snapshot(rig):
    pos = await _open_positions(rig)
    await rig.send(RISK_COMMAND, command_env("trip"))
    n = len(await rig.out(RISK_ORDER))
    await rig.send(EXEC_REPORT, exec_rejected_env("BTCUSDT", rig.bar, 1))    # that flatten failed
    await rig.next_bar()
    snap = snapshot_env(rig.bar, EQUITY, {"BTCUSDT": (pos["BTCUSDT"], rig.price("BTCUSDT"))})
    await rig.send(PORTFOLIO_SNAPSHOT, snap)
    again = (await rig.bodies(RISK_ORDER))[n:]
    assert [(o.instrument, o.qty, o.reduce_only) for o in again] == [("BTCUSDT", pos["BTCUSDT"], True)]
    assert again[0].intent_id == flatten_intent_id(snap.event_id, "BTCUSDT", 0)
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar, EQUITY, {
        "BTCUSDT": (pos["BTCUSDT"], rig.price("BTCUSDT"))}, peak=EQUITY + 1))
    assert len(await rig.out(RISK_ORDER)) == n + 1           # in flight: not sent twice


async def test_stale_market_data_trips_on_event_time(rig):
    for _ in range(2):                                       # SOL silent for 2 intervals: not yet
        await rig.next_bar(("BTCUSDT", "ETHUSDT"))
        assert await rig.out(RISK_BREAKER) == []
    await rig.next_bar(("BTCUSDT",))
    (b,) = await rig.out(RISK_BREAKER)
    assert (b.body.to_state, b.body.trigger) == ("OPEN", "stale_data")
    assert "SOLUSDT (3.0 intervals)" in b.body.reason and "ETHUSDT" not in b.body.reason
    bars = await rig.out(MD_BAR)
    assert b.causation_id == bars[-1].event_id and b.body.at_ms == (bars[-1].ts_event_ns // 10**6)


async def test_a_snapshot_read_ahead_of_the_bars_does_not_fake_a_silent_feed(rig):
    # A consumer catching up may handle portfolio.snapshot entries before md.bar entries of the
    # same period: staleness is judged on the md.bar clock, not on the latest event of any stream.
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar + 5, EQUITY))
    await rig.send(SIZING_TARGET, target_env("BTCUSDT", rig.bar + 5, 0.1))
    assert await rig.out(RISK_BREAKER) == []
    for _ in range(5):
        await rig.next_bar()
    assert await rig.out(RISK_BREAKER) == [] and len(await rig.out(RISK_ORDER)) == 1


async def test_consecutive_executor_failures_trip(rig):
    for n, env in enumerate([exec_rejected_env("BTCUSDT", rig.bar, 1),
                             exec_rejected_env("BTCUSDT", rig.bar, 2),
                             exec_rejected_env("BTCUSDT", rig.bar, 3, source="risk"),   # not counted
                             exec_filled_env("ETHUSDT", rig.bar, 4),                    # resets
                             exec_rejected_env("ETHUSDT", rig.bar, 5),
                             exec_rejected_env("ETHUSDT", rig.bar, 6)]):
        await rig.send(EXEC_REPORT, env)
        assert await rig.out(RISK_BREAKER) == [], n
    await rig.send(EXEC_REPORT, exec_rejected_env("SOLUSDT", rig.bar, 7))
    (b,) = await rig.bodies(RISK_BREAKER)
    assert (b.to_state, b.trigger) == ("OPEN", "exec_failures") and "3 consecutive" in b.reason


async def _trip_automatically(rig: Rig) -> None:
    """Three executor rejections: an automatic trip (no hold), which recovers by cool-down."""
    for n in range(3):
        await rig.send(EXEC_REPORT, exec_rejected_env("BTCUSDT", rig.bar, 100 + n))
    assert [b.trigger for b in await rig.bodies(RISK_BREAKER)] == ["exec_failures"]


async def test_half_open_after_cooldown_with_reduced_size_then_held_closes():
    rig = Rig(make_params())                                 # cool-down 1 day = 6 bars
    await rig.warm_up()
    await _trip_automatically(rig)
    for _ in range(5):
        await rig.next_bar()
    assert [b.to_state for b in await rig.bodies(RISK_BREAKER)] == ["OPEN"]
    await rig.next_bar()
    assert [b.to_state for b in await rig.bodies(RISK_BREAKER)] == ["OPEN", "HALF_OPEN"]
    assert (await rig.bodies(RISK_BREAKER))[1].trigger == "cooldown_elapsed"
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar, EQUITY))
    await rig.send(SIZING_TARGET, target_env("ETHUSDT", rig.bar, 0.2))
    (o,) = await rig.bodies(RISK_ORDER)
    full = (Decimal("0.2") * EQUITY / rig.price("ETHUSDT")) // Decimal("0.01") * Decimal("0.01")
    assert abs(o.qty - full / 2) <= Decimal("0.01") and not o.reduce_only
    for _ in range(5):                                       # 6 bars without a loss → CLOSED
        await rig.next_bar()
        await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar, EQUITY, {"ETHUSDT": (o.target_qty, rig.price("ETHUSDT"))}))
    last = (await rig.bodies(RISK_BREAKER))[-1]
    assert (last.from_state, last.to_state, last.trigger) == ("HALF_OPEN", "CLOSED", "held")
    await rig.send(SIZING_TARGET, target_env("ETHUSDT", rig.bar, 0.2))
    assert (await rig.bodies(RISK_ORDER))[-1].target_qty == full     # full size again


async def test_new_loss_in_half_open_reopens_and_flattens():
    rig = Rig(make_params())
    await rig.warm_up()
    await _trip_automatically(rig)
    for _ in range(6):
        await rig.next_bar()
    await rig.send(SIZING_TARGET, target_env("SOLUSDT", rig.bar, 0.3))
    (o,) = await rig.bodies(RISK_ORDER)
    await rig.next_bar()
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar, Decimal(99_000),
                                                    {"SOLUSDT": (o.target_qty, rig.price("SOLUSDT"))}))
    last = (await rig.bodies(RISK_BREAKER))[-1]
    assert (last.from_state, last.to_state, last.trigger) == ("HALF_OPEN", "OPEN", "loss")
    flat = (await rig.bodies(RISK_ORDER))[-1]
    assert flat.reduce_only and flat.qty == o.target_qty and flat.side == "Sell"


async def test_manual_commands_through_the_stream(rig):
    await rig.send(RISK_COMMAND, command_env("trip", 1, reason="ops drill"))
    await rig.send(RISK_COMMAND, command_env("trip", 2))                     # illegal: ignored
    await rig.send(RISK_COMMAND, command_env("reset", 5))                    # no reason: ignored
    await rig.send(RISK_COMMAND, command_env("reset", 3, reason="drill over"))
    await rig.send(RISK_COMMAND, command_env("reset", 4, reason="again"))    # illegal: ignored
    bs = await rig.bodies(RISK_BREAKER)
    assert [(b.from_state, b.to_state, b.trigger) for b in bs] == [
        ("CLOSED", "OPEN", "manual_trip"), ("OPEN", "CLOSED", "manual_reset")]
    assert bs[0].reason == "trip by admin: ops drill"
    r = rig.handler.command_results
    assert r["cmd-trip-2"]["applied"] is False and r["cmd-reset-3"]["applied"] is True
    assert r["cmd-reset-5"] == {"applied": False, "from_state": "OPEN", "state": "OPEN",
                                "detail": "a reset needs a reason"}
    assert (await rig.bus.entries(RISK_COMMAND + ".dlq")) == []


async def _scenario(rig: Rig, restart_at: int | None) -> None:
    steps = []
    for s, f in zip(SYMBOLS, (0.4, -0.3, 0.2)):
        steps.append((SIZING_TARGET, lambda s=s, f=f: target_env(s, rig.bar, f)))
    steps += [("bar", None), (PORTFOLIO_SNAPSHOT, lambda: snapshot_env(rig.bar, Decimal(97_000))),
              (EXEC_REPORT, lambda: exec_rejected_env("ETHUSDT", rig.bar, 1)),
              (SIZING_TARGET, lambda: target_env("ETHUSDT", rig.bar, 0.6)), ("bar", None),
              (PORTFOLIO_SNAPSHOT, lambda: snapshot_env(rig.bar, Decimal(94_000))),
              (SIZING_TARGET, lambda: target_env("BTCUSDT", rig.bar, 0.1))]
    for i, (stream, make) in enumerate(steps):
        if i == restart_at:
            rig.restart()
        if stream == "bar":
            await rig.next_bar()
        else:
            await rig.send(stream, make())


@pytest.mark.parametrize("restart_at", [3, 6])
async def test_restart_and_replay_give_identical_outputs(restart_at):
    a, b = Rig(), Rig()
    await a.warm_up()
    await b.warm_up()
    await _scenario(a, None)
    await _scenario(b, restart_at)
    for stream in (RISK_ORDER, RISK_REJECTION, RISK_BREAKER):
        ea = [(e.event_id, e.causation_id, e.body) for e in await a.out(stream)]
        eb = [(e.event_id, e.causation_id, e.body) for e in await b.out(stream)]
        assert ea == eb and ea, stream
    assert a.handler.state.breaker.state == b.handler.state.breaker.state == State.OPEN
    assert await a.bus.load_state(STATE_KEY) == await b.bus.load_state(STATE_KEY)


@pytest.mark.parametrize("action", ["kill", "trip"])
async def test_a_kill_or_manual_trip_flattens_and_holds_open_past_the_cool_down(action):
    """Unlike the automatic trips above, an operator's kill (or trip) never turns HALF_OPEN by
    itself: 3 days of bars later it is still OPEN, every target is rejected, and only a reset
    with a reason closes it."""
    rig = Rig(make_params())
    await rig.warm_up()
    pos = await _open_positions(rig)
    n = len(await rig.out(RISK_ORDER))
    await rig.send(RISK_COMMAND, command_env(action, reason="venue incident"))
    (b,) = await rig.bodies(RISK_BREAKER)
    assert (b.from_state, b.to_state) == ("CLOSED", "OPEN")
    assert b.trigger == {"kill": "kill", "trip": "manual_trip"}[action]
    flat = (await rig.bodies(RISK_ORDER))[n:]
    assert {(o.instrument, o.reduce_only, o.target_qty) for o in flat} == {
        (s, True, Decimal(0)) for s in pos}
    assert rig.handler.state.breaker.hold == {"kill": "kill", "trip": "manual"}[action]
    for _ in range(18):                                   # 3 days: cool-down is 1 day
        await rig.next_bar()
        await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar, EQUITY))
    assert [x.to_state for x in await rig.bodies(RISK_BREAKER)] == ["OPEN"]
    await rig.send(SIZING_TARGET, target_env("ETHUSDT", rig.bar, 0.2))
    assert (await rig.bodies(RISK_REJECTION))[-1].reason == "breaker OPEN"
    await rig.send(RISK_COMMAND, command_env("reset", 1))                    # no reason: refused
    assert rig.handler.state.breaker.state == "OPEN"
    await rig.send(RISK_COMMAND, command_env("reset", 2, reason="incident closed"))
    last = (await rig.bodies(RISK_BREAKER))[-1]
    assert (last.to_state, last.trigger) == ("CLOSED", "manual_reset")
    assert "incident closed" in last.reason and rig.handler.state.breaker.hold == ""


async def test_a_kill_while_open_after_a_drawdown_re_flattens_and_removes_the_recovery():
    rig = Rig(make_params())
    await rig.warm_up()
    await _trip_automatically(rig)
    await rig.send(RISK_COMMAND, command_env("kill", reason="stop everything"))
    b = (await rig.bodies(RISK_BREAKER))[-1]
    assert (b.from_state, b.to_state, b.trigger) == ("OPEN", "OPEN", "kill")
    for _ in range(12):
        await rig.next_bar()
    assert [x.to_state for x in await rig.bodies(RISK_BREAKER)] == ["OPEN", "OPEN"]


async def test_loss_limits_trip_with_their_own_reason_and_survive_a_restart():
    """The daily limit trips (own trigger and reason); the state, restored by a new handler from
    the saved snapshot, keeps the baselines; closing the breaker again moves neither."""
    rig = Rig(make_params(breaker=BreakerParams(daily_loss_limit=0.03,
                                                cumulative_loss_limit=0.05)))
    await rig.warm_up()                        # snapshot of 100 000 USDT: inception, day start
    day_start = rig.handler.state.losses.day_start_equity
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar, Decimal(96_900)))   # −3.1 %
    (b,) = await rig.bodies(RISK_BREAKER)
    assert (b.to_state, b.trigger) == ("OPEN", "daily_loss") and "daily loss 3.10%" in b.reason
    rig.restart()                              # a new process: state from the bus
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar, Decimal(96_900)))
    s = rig.handler.state
    assert s.breaker.hold == "daily_loss" and s.losses.baseline_equity == EQUITY
    assert s.losses.day_start_equity == day_start
    await rig.send(RISK_COMMAND, command_env("reset", reason="reviewed the day"))
    assert rig.handler.state.breaker.state == "CLOSED"
    assert rig.handler.state.losses.baseline_equity == EQUITY       # only the day was rebased
    await rig.next_bar()
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(rig.bar, Decimal(94_900)))   # −5.1 % total
    last = (await rig.bodies(RISK_BREAKER))[-1]
    assert (last.to_state, last.trigger) == ("OPEN", "cumulative_loss")
    assert "since inception" in last.reason
