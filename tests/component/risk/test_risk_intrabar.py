"""Intra-bar protection through risk's consumer on the in-memory bus: a valuation between two bar
closes trips the breaker then (drawdown or a loss limit, with its reason) and the transition
flattens every position before the next bar; stale valuations are ignored; a restart anywhere
keeps the state (the outputs and the saved state equal an uninterrupted run's)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tm_common.bus.streams import (
    MD_BAR,
    PORTFOLIO_SNAPSHOT,
    PORTFOLIO_VALUATION,
    RISK_BREAKER,
    RISK_ORDER,
    RISK_REJECTION,
    SIZING_TARGET,
)
from tm_common.testing.bars import open_ms
from tm_risk.app import INPUTS
from tm_risk.domain.breaker import State
from tm_risk.domain.params import H4_MS, BreakerParams
from tm_risk.domain.sizing import flatten_intent_id
from tm_risk.testing import (
    EQUITY,
    SYMBOLS,
    bar_env,
    history,
    make_params,
    snapshot_env,
    target_env,
    valuation_env,
)

from .conftest import STATE_KEY, BusRig

N = 120


class Rig(BusRig):
    def __init__(self, params=None) -> None:
        super().__init__(INPUTS, params)

    async def start(self) -> dict[str, Decimal]:
        """Warm-up bars, a flat snapshot, targets for every symbol, then bar N and the snapshot
        of N in which they are filled. Returns the positions."""
        bars, self.closes = history(N)
        for e in bars:
            await self.bus.publish(MD_BAR, e)
        await self.consumer.run_until_idle()
        await self.send(PORTFOLIO_SNAPSHOT, snapshot_env(N - 1, EQUITY))
        for s, f in zip(SYMBOLS, (0.4, -0.3, 0.2)):
            await self.send(SIZING_TARGET, target_env(s, N - 1, f))
        pos = {o.body.instrument: o.body.target_qty for o in await self.out(RISK_ORDER)}
        for s in SYMBOLS:
            await self.send(MD_BAR, bar_env(s, N, self.closes[s][-1]))
        await self.send(PORTFOLIO_SNAPSHOT, snapshot_env(
            N, EQUITY, {s: (q, self.closes[s][-1]) for s, q in pos.items()}))
        return pos


CLOSE = open_ms(N) + H4_MS          # the close of the newest snapshot's bar: marks come after it


async def test_an_intra_bar_drop_trips_before_the_next_close_and_flattens():
    rig = Rig()
    pos = await rig.start()
    n = len(await rig.out(RISK_ORDER))
    await rig.send(PORTFOLIO_VALUATION, valuation_env(CLOSE + 60_000, 96_000, peak=EQUITY))
    await rig.send(PORTFOLIO_VALUATION, valuation_env(CLOSE, 80_000, peak=EQUITY))   # not after
    assert await rig.out(RISK_BREAKER) == []                        # −4 %: under 5 %; stale
    await rig.send(PORTFOLIO_VALUATION, valuation_env(CLOSE + 120_000, 94_000, peak=EQUITY))
    (brk_env,) = await rig.out(RISK_BREAKER)
    b = brk_env.body
    assert (b.from_state, b.to_state, b.trigger) == ("CLOSED", "OPEN", "drawdown")
    assert b.at_ms == CLOSE + 120_000 < CLOSE + H4_MS                # inside the next bar
    assert "intra-bar drawdown 6.00% from peak 100000 USDT exceeds 5.00%" in b.reason
    flat = (await rig.out(RISK_ORDER))[n:]
    assert {o.body.instrument for o in flat} == set(pos) == set(SYMBOLS)
    for o in flat:
        q = pos[o.body.instrument]
        assert o.body.reduce_only and o.body.qty == abs(q) and o.body.target_qty == 0
        assert o.body.side == ("Sell" if q > 0 else "Buy")
        assert o.body.intent_id == flatten_intent_id(brk_env.event_id, o.body.instrument, 0)
        # stamped with its bar's close (bar N), not the mark's time: the portfolio books the
        # fills at once and the next snapshot shows the book flat
        assert o.body.bar_time_ms == open_ms(N) and o.ts_event_ns == CLOSE * 1_000_000
    s = rig.handler.state
    assert (s.valuation_ms, s.valuation_equity) == (CLOSE + 120_000, Decimal(94_000))
    assert s.breaker.peak_equity == EQUITY and s.equity == EQUITY   # bar-close fields unmoved
    # OPEN means flat: the next bar's targets are rejected; a later valuation re-orders nothing
    await rig.send(PORTFOLIO_VALUATION, valuation_env(CLOSE + 180_000, 90_000, peak=EQUITY))
    await rig.send(SIZING_TARGET, target_env("BTCUSDT", N, 0.5))
    assert [r.body.reason for r in await rig.out(RISK_REJECTION)] == ["breaker OPEN"]
    assert len(await rig.out(RISK_ORDER)) == n + len(flat)
    assert len(await rig.out(RISK_BREAKER)) == 1


async def test_an_intra_bar_loss_limit_trips_with_its_own_reason_and_moves_no_baseline():
    rig = Rig(make_params(breaker=BreakerParams(daily_loss_limit=0.03,
                                                cumulative_loss_limit=0.10)))
    await rig.start()
    losses = rig.handler.state.losses
    await rig.send(PORTFOLIO_VALUATION, valuation_env(CLOSE + 60_000, 96_900, peak=EQUITY))
    (b,) = [e.body for e in await rig.out(RISK_BREAKER)]
    assert (b.to_state, b.trigger) == ("OPEN", "daily_loss")
    assert "daily loss 3.10%" in b.reason and b.reason.endswith("on an intra-bar mark")
    assert rig.handler.state.breaker.hold == "daily_loss"
    assert rig.handler.state.losses == losses
    await rig.send(PORTFOLIO_VALUATION, valuation_env(CLOSE + 120_000, 89_000, peak=EQUITY))
    b2 = (await rig.out(RISK_BREAKER))[-1].body
    assert (b2.from_state, b2.to_state, b2.trigger) == ("OPEN", "OPEN", "cumulative_loss")


async def test_no_valuation_acts_before_the_first_snapshot():
    rig = Rig()
    await rig.send(PORTFOLIO_VALUATION, valuation_env(CLOSE, 1, peak=EQUITY))
    assert await rig.out(RISK_BREAKER) == [] and rig.handler.state.valuation_ms is None


STEPS = [(PORTFOLIO_VALUATION, valuation_env(CLOSE + 60_000, 97_000, peak=EQUITY)),
         (PORTFOLIO_VALUATION, valuation_env(CLOSE + 120_000, 96_000, peak=EQUITY)),
         # older than the last one applied: ignored, if the state kept the last one's time
         (PORTFOLIO_VALUATION, valuation_env(CLOSE + 90_000, 90_000, peak=EQUITY)),
         (PORTFOLIO_VALUATION, valuation_env(CLOSE + 180_000, 94_500, peak=EQUITY)),
         (SIZING_TARGET, target_env("ETHUSDT", N, 0.3))]


@pytest.mark.parametrize("restart_at", [1, 2, 3, 4])
async def test_a_restart_mid_bar_keeps_the_state(restart_at):
    ref, rig = Rig(), Rig()
    await ref.start()
    await rig.start()
    for i, (stream, env) in enumerate(STEPS):
        if i == restart_at:
            rig.restart()                              # a new process: state from the bus
        await rig.send(stream, env)
        await ref.send(stream, env)
    for stream in (RISK_ORDER, RISK_REJECTION, RISK_BREAKER):
        got = [(e.event_id, e.body) for e in await rig.out(stream)]
        assert got == [(e.event_id, e.body) for e in await ref.out(stream)], stream
    (b,) = [e.body for e in await ref.out(RISK_BREAKER)]
    assert b.at_ms == CLOSE + 180_000 and "5.50%" in b.reason     # not the stale 10 % one
    assert rig.handler.state.breaker.state == State.OPEN
    assert await rig.bus.load_state(STATE_KEY) == await ref.bus.load_state(STATE_KEY)


async def test_a_kill_inside_a_bar_stamps_its_flatten_with_the_bar_close():
    """A command carries wall time; its flatten orders carry the close of their bar, as the
    intra-bar trip's do, so that the portfolio books the fills before the next snapshot."""
    from tm_risk.commands import RISK_COMMAND
    from tm_risk.testing import command_env

    rig = Rig()
    pos = await rig.start()
    n = len(await rig.out(RISK_ORDER))
    await rig.send(RISK_COMMAND, command_env("kill", at_ms=CLOSE + 3_600_000, reason="incident"))
    flat = (await rig.out(RISK_ORDER))[n:]
    assert {o.body.instrument for o in flat} == set(pos)
    assert {(o.body.bar_time_ms, o.ts_event_ns) for o in flat} == {(open_ms(N), CLOSE * 1_000_000)}
