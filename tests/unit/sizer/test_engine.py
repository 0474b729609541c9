"""The join engine: complete joins, later-bar flushes, stale regime, late inputs, state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tm_quant.sizing.observation import PaperBook
from tm_sizer.domain.engine import MAX_BREAKER_LOG, RegimeIn, SignalIn, SizerEngine, SizerParams
from tm_sizer.domain.policy import RLPolicy
from tm_sizer.testing import policy_bundle, random_actor_arrays

S = "BTCUSDT"


def sig(t: int, p: float = 0.8, ic: float | None = 0.3, n: int = 60) -> SignalIn:
    """A signal whose live IC (default 0.3 over 60 matured predictions) is significant."""
    return SignalIn(S, t, 1 if p > 0.5 else -1, p, abs(2 * p - 1), ic, t * 10, live_ic_n=n)


def reg(t: int, label: str = "Bull") -> RegimeIn:
    return RegimeIn(S, t, label, (0.7, 0.1, 0.1, 0.1), 0.01)


def policy(bias: float = 5.0, passed: bool = True) -> RLPolicy:
    b = policy_bundle(passed=passed, arrays=random_actor_arrays(bias=bias))
    return RLPolicy.from_manifest(b.manifest, b.npz)


def test_decides_once_all_three_are_in_in_any_order():
    for order in ("srb", "bsr", "rbs"):
        e = SizerEngine()
        outs = []
        for ch in order:
            r = e.on_signal(sig(1)) if ch == "s" else e.on_regime(reg(1)) if ch == "r" \
                else e.on_bar(S, 1, 100.0)
            outs += r.outs
        assert len(outs) == 1 and not outs[0].regime_stale
        assert outs[0].regime == "Bull" and e.pending_keys() == []


def test_later_bar_flushes_with_last_regime_and_stale_flag():
    e = SizerEngine()
    for _x in (e.on_bar(S, 1, 100.0), e.on_regime(reg(1, "Bear")), e.on_signal(sig(1))):
        pass
    e.on_bar(S, 2, 101.0)
    r = e.on_signal(sig(2))                 # regime of bar 2 never comes
    assert r.outs == []
    r = e.on_bar(S, 3, 102.0)               # a later bar time flushes bar 2
    assert len(r.outs) == 1
    o = r.outs[0]
    assert o.bar_time_ms == 2 and o.regime_stale and o.regime == "Bear"
    assert "stale:later_bar" in r.notes and "regime stale" in o.decision.reason
    late = e.on_regime(reg(2))
    assert late.outs == [] and late.notes == ["late:regime"]


def test_bar_without_signal_is_dropped_on_flush():
    e = SizerEngine()
    e.on_bar(S, 1, 100.0)
    e.on_regime(reg(1))
    r = e.on_bar(S, 2, 100.0)
    assert r.outs == [] and any(n.startswith("dropped:no_signal") for n in r.notes)


def test_timeout_flush_and_nothing_pending():
    e = SizerEngine()
    e.on_bar(S, 1, 100.0)
    e.on_signal(sig(1))
    r = e.flush(S, 1, "timeout")
    assert len(r.outs) == 1 and r.outs[0].regime_stale and r.outs[0].regime is None
    assert e.flush(S, 1).notes == ["flush:nothing_pending"]


def test_breaker_open_flattens_and_unknown_instrument_is_ignored():
    e = SizerEngine()
    e.on_breaker("OPEN", 0)
    e.on_bar(S, 1, 100.0)
    e.on_regime(reg(1))
    o = e.on_signal(sig(1, p=0.9)).outs[0]
    assert o.decision.tier == "EMERGENCY_FLAT" and o.decision.target_fraction == 0.0
    assert o.decision.kelly_fraction > 0            # still reported
    assert e.on_signal(SignalIn("DOGEUSDT", 1, 1, 0.9, 0.8, 0.1, 0)).notes[0].startswith("dropped")


def _run(e: SizerEngine, n: int, closes) -> list:
    outs = []
    for t in range(n):
        e.on_bar(S, t, float(closes[t]))
        e.on_regime(reg(t))
        outs += e.on_signal(sig(t, p=0.8 if t % 3 else 0.3)).outs
    return outs


def test_paper_book_returns_and_outcomes_follow_the_bars():
    e = SizerEngine(SizerParams(cost_rate=0.001))
    closes = 100 * np.cumprod(1 + np.random.default_rng(0).normal(0, 0.01, 40))
    outs = _run(e, 40, closes)
    book, last = PaperBook(), None
    for t, o in enumerate(outs):
        if last is not None:
            book.hold(closes[t] / closes[t - 1] - 1)
        book.rebalance(o.decision.target_fraction, 0.001)
        last = o
    st = e.inst[S]
    assert st.book.equity == pytest.approx(book.equity) and st.book.peak == pytest.approx(book.peak)
    assert st.returns[0] == pytest.approx(math.log(closes[-1] / closes[-2]))
    assert len(st.outcomes) == 39


def test_full_rl_needs_a_passed_policy():
    e = SizerEngine()
    e.set_policy(policy(bias=5.0, passed=False))
    e.on_bar(S, 1, 100.0)
    e.on_regime(reg(1))
    o = e.on_signal(sig(1, p=0.9)).outs[0]
    assert o.decision.tier == "BLENDED" and o.decision.rl_fraction is None
    e.set_policy(policy(bias=5.0, passed=True))
    e.on_bar(S, 2, 100.0)
    e.on_regime(reg(2))
    o = e.on_signal(sig(2, p=0.9)).outs[0]
    assert o.decision.tier == "FULL_RL" and o.policy_version == "rl-test"
    assert o.decision.target_fraction == pytest.approx(0.25, abs=1e-3)    # tanh(big) * 0.25


def test_snapshot_round_trip_gives_identical_future():
    closes = 100 * np.cumprod(1 + np.random.default_rng(1).normal(0, 0.01, 30))
    a = SizerEngine()
    _run(a, 20, closes)
    a.on_bar(S, 20, float(closes[20]))            # leave a pending join in the state
    b = SizerEngine()
    b.restore(json.loads(json.dumps(a.snapshot())))
    assert b.snapshot() == a.snapshot() and b.pending_keys() == [(S, 20)]
    for e in (a, b):
        e.on_regime(reg(20))
    assert a.on_signal(sig(20)).outs == b.on_signal(sig(20)).outs


def _decide_with_trip(trip_first: bool) -> list[tuple[int, str]]:
    """Bars 1-3; risk trips the breaker at bar 2's snapshot (stamped with bar 2's close, 20 in
    these signals' clock), delivered before or after bar 2's signal."""
    e = SizerEngine()
    out = []
    for t in (1, 2, 3):
        e.on_bar(S, t, 100.0 + t)
        e.on_regime(reg(t))
        if t == 2 and trip_first:
            e.on_breaker("OPEN", 20)
        out += [(o.bar_time_ms, o.decision.tier) for o in e.on_signal(sig(t, p=0.9)).outs]
        if t == 2 and not trip_first:
            e.on_breaker("OPEN", 20)
    return out


def test_a_trip_rules_the_bars_after_its_close_whatever_the_arrival_order():
    first, after = _decide_with_trip(True), _decide_with_trip(False)
    assert first == after
    assert [tier for _, tier in first][1:] == [first[1][1], "EMERGENCY_FLAT"]
    assert first[1][1] != "EMERGENCY_FLAT"


def test_the_breaker_log_survives_a_restart_and_an_old_snapshot_keeps_its_state():
    e = SizerEngine()
    e.on_breaker("OPEN", 20)
    e.on_breaker("HALF_OPEN", 40)
    again = SizerEngine()
    again.restore(e.snapshot())
    assert [again.breaker_at(t) for t in (10, 21, 41)] == [None, "OPEN", "HALF_OPEN"]
    old = SizerEngine()
    old.restore({"breaker_state": "OPEN"})        # a snapshot from before the log
    assert old.breaker_at(0) == "OPEN"


def test_the_oldest_transitions_fold_into_the_state_before_them():
    e = SizerEngine()
    for i in range(MAX_BREAKER_LOG + 2):
        e.on_breaker("OPEN" if i % 2 == 0 else "CLOSED", i)
    assert len(e.breaker_log) == MAX_BREAKER_LOG and e.breaker_before == "CLOSED"
    assert e.breaker_at(MAX_BREAKER_LOG + 5) == "CLOSED"
