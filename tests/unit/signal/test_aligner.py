"""BTC-first ordering within a bar time: the result never depends on arrival order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from tm_signal.domain.aligner import BTC_MISSING, schedule
from tm_signal.domain.bars import BarIn

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def bar(sym: str, t: int) -> BarIn:
    return BarIn(sym, t, 1.0, 1.0, 1.0, 1.0, 1.0, t)


def run(bars: list[BarIn]) -> set[tuple[str, int, int | None, str]]:
    """Apply schedule bar by bar; record (instrument, time, BTC time it sees, note)."""
    buffer: list[BarIn] = []
    last: dict[str, int] = {}
    seen = set()
    for b in bars:
        sch = schedule(b, buffer, last, SYMS, "BTCUSDT")
        buffer = list(sch.buffer)
        for r, note in sch.ready:
            last[r.instrument] = r.open_time_ms
            btc_t = last.get("BTCUSDT") if r.instrument != "BTCUSDT" else None
            assert btc_t is None or btc_t <= r.open_time_ms or r.instrument == "BTCUSDT"
            key = (r.instrument, r.open_time_ms, btc_t, note)
            assert key not in seen, "processed twice"
            seen.add(key)
    return seen


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sets(st.sampled_from(SYMS), min_size=1), min_size=1, max_size=10),
       st.integers(0, 2**32 - 1))
def test_any_order_within_a_bar_time_gives_the_same_result(present, seed):
    rng = random.Random(seed)
    times = [[bar(s, t) for s in sorted(ss)] for t, ss in enumerate(present)]
    ordered = [b for group in times for b in group]
    shuffled = []
    for group in times:
        g = list(group)
        rng.shuffle(g)
        shuffled.extend(g)
    end = [bar("BTCUSDT", len(present) + 5)]          # a later bar releases anything left
    a, b = run(ordered + end), run(shuffled + end)
    assert a == b
    # every bar is processed once, and a non-BTC bar sees the newest BTC bar <= its time
    btc_times = sorted(t for t, ss in enumerate(present) if "BTCUSDT" in ss)
    for inst, t, btc_t, note in a:
        if inst == "BTCUSDT":
            continue
        expect = max((x for x in btc_times if x <= t), default=None)
        assert btc_t == expect
        assert (note == BTC_MISSING) == (expect != t)
    assert len(a) == sum(len(ss) for ss in present) + 1


def test_eth_before_btc_is_buffered_then_released_by_btc():
    s = schedule(bar("ETHUSDT", 10), [], {"BTCUSDT": 9}, SYMS, "BTCUSDT")
    assert s.ready == () and [b.instrument for b in s.buffer] == ["ETHUSDT"]
    s2 = schedule(bar("BTCUSDT", 10), s.buffer, {"BTCUSDT": 9}, SYMS, "BTCUSDT")
    assert [(b.instrument, n) for b, n in s2.ready] == [("BTCUSDT", ""), ("ETHUSDT", "")]
    assert s2.buffer == ()


def test_duplicates_unknown_instruments_and_no_btc_mode():
    assert schedule(bar("ETHUSDT", 5), [], {"ETHUSDT": 5}, SYMS, "BTCUSDT").dropped
    assert schedule(bar("ETHUSDT", 5), [bar("ETHUSDT", 5)], {}, SYMS, "BTCUSDT").dropped
    assert "not configured" in schedule(bar("XRPUSDT", 5), [], {}, SYMS, "BTCUSDT").dropped
    s = schedule(bar("ETHUSDT", 5), [], {}, SYMS, None)          # no cross asset: no waiting
    assert [b.instrument for b, _ in s.ready] == ["ETHUSDT"]
