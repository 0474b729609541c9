"""The shadow book's pure parts: cutting production's market events into bar-time batches, and
the evidence a candidate's shadow runs give for promotion."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tm_app.shadow.mirror import MarketMirror
from tm_common.events import BarClosed, Envelope, FundingRateUpdated
from tm_common.models.evidence import DAY_MS, Evidence, ShadowRecord, evidence_of, shadow_records

H4 = 4 * 3600_000
SYMS = ("BTCUSDT", "ETHUSDT")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def bar(sym: str, t: int) -> tuple[str, str, dict]:
    body = BarClosed(instrument=sym, open_time_ms=t, close_time_ms=t + H4, open=Decimal(1),
                     high=Decimal(2), low=Decimal(1), close=Decimal(1), volume=Decimal(1))
    return "md.bar", "0-0", Envelope.root(body, key=f"{sym}:{t}", correlation_id="c", ts_event_ns=0, ts_init_ns=0).to_fields()


def rate(sym: str, t: int) -> tuple[str, str, dict]:
    body = FundingRateUpdated(instrument=sym, settle_time_ms=t, rate=Decimal("0.0001"))
    return "md.funding", "0-0", Envelope.root(body, key=f"f{sym}:{t}", correlation_id="c", ts_event_ns=0, ts_init_ns=0).to_fields()


def mirror(**kw) -> tuple[MarketMirror, Clock]:
    clock = Clock()
    return MarketMirror(None, {}, SYMS, clock=clock, flush_after_s=30, **kw), clock


def test_a_bar_time_is_a_batch_once_every_symbol_is_in():
    m, _ = mirror()
    assert m.feed([rate("BTCUSDT", H4), bar("BTCUSDT", 0)]) == []
    [b] = m.feed([bar("ETHUSDT", 0), rate("BTCUSDT", 2 * H4)])
    assert b.bar_time_ms == 0 and [x.instrument for x in b.bars] == ["BTCUSDT", "ETHUSDT"]
    assert len(b.funding) == 1 and b.events[0][0] == "md.funding"   # publication order kept
    [b2] = m.feed([bar("ETHUSDT", H4), bar("BTCUSDT", H4)])
    assert b2.bar_time_ms == H4 and len(b2.funding) == 1             # the rate published after
    assert (m.counts.batches, m.counts.partial) == (2, 0)


def test_a_missing_bar_is_cut_by_the_next_bar_time_or_by_silence():
    m, clock = mirror()
    assert m.feed([bar("BTCUSDT", 0)]) == []
    [b] = m.feed([bar("BTCUSDT", H4)])                   # ETH's bar of 0 never came
    assert b.bar_time_ms == 0 and m.counts.partial == 1
    clock.t = 29.0
    assert m.feed([]) == []
    clock.t = 31.0
    [b2] = m.feed([])
    assert b2.bar_time_ms == H4 and m.counts.partial == 2


def test_a_backfill_one_symbol_after_the_other_is_applied_in_its_order():
    m, _ = mirror()
    out = m.feed([bar("BTCUSDT", 0), bar("BTCUSDT", H4), bar("ETHUSDT", 0), bar("ETHUSDT", H4),
                  bar("BTCUSDT", 2 * H4), bar("ETHUSDT", 2 * H4)])
    assert [(b.bar_time_ms, [x.instrument for x in b.bars]) for b in out] == [
        (0, ["BTCUSDT"]), (H4, ["BTCUSDT"]), (0, ["ETHUSDT"]), (H4, ["ETHUSDT"]),
        (2 * H4, ["BTCUSDT", "ETHUSDT"])]
    assert m.counts.partial == 4


def test_malformed_foreign_and_early_entries_are_counted_not_traded():
    m, _ = mirror(from_ms=H4)
    out = m.feed([("md.bar", "0-0", {"type": "bar.closed", "body": "{not json"}),
                  bar("XRPUSDT", H4), bar("BTCUSDT", 0), bar("BTCUSDT", H4), bar("ETHUSDT", H4)])
    assert [b.bar_time_ms for b in out] == [H4]
    assert (m.counts.malformed, m.counts.skipped) == (1, 2)


def rec(run_id: str, mode: str, first_day: float, last_day: float) -> ShadowRecord:
    return ShadowRecord(run_id=run_id, mode=mode, first_bar_ms=int(first_day * DAY_MS),
                        last_bar_ms=int(last_day * DAY_MS), bars=1, total_return=0.0,
                        sharpe=float("nan"), max_drawdown=0.0, ic=0.1, orders=0,
                        updated_at_ms=0)


def test_forward_days_count_paper_and_live_once_and_never_replay():
    ev = Evidence("v1", "signal", {}, [rec("a", "paper", 0, 10), rec("b", "live", 5, 20),
                                       rec("c", "replay", 100, 300), rec("d", "paper", 30, 31)])
    assert ev.forward_days == pytest.approx(21.0)
    assert ev.shortfall(21) is None
    assert "21.0 days" in ev.shortfall(30) and "minimum of 30" in ev.shortfall(30)


def test_records_round_trip_through_registry_json():
    r = rec("tm:shadow:v1:", "paper", 1, 2)
    stored = {"mean_ic": 0.01, "why": "gate", "oos": {"big": 1}, "_shadow": {r.run_id: r.to_json()}}
    assert stored["_shadow"][r.run_id]["sharpe"] is None              # NaN is not JSON
    [back] = shadow_records(stored)
    assert back.run_id == r.run_id and back.days == pytest.approx(1.0)
    ev = evidence_of("v1", "signal", stored)
    assert ev.walk_forward == {"mean_ic": 0.01, "why": "gate"} and len(ev.shadow) == 1
    with pytest.raises(ValueError, match="shadow mode"):
        rec("x", "backtest", 0, 1)
