"""The executor's instruments refresh: a change is used at once, published once, and kept
pending (retried with the same key) while the bus refuses it."""

import dataclasses
from decimal import Decimal

import pytest
from tm_common.errors import TransientError
from tm_common.events import InstrumentsChanged
from tm_common.instruments import InstrumentSpec, spec_changes
from tm_executor.instruments import WATCHED, InstrumentRefresher, filters

from .fakes import LOTS, settings


class _Venue:
    def __init__(self, lots):
        self.lots = dict(lots)

    async def instrument(self, sym):
        return self.lots[sym]

    def signing_ms(self):
        return 1_700_000_000_000


class _Preflight:
    passed = True

    def __init__(self):
        self.specs = dict(LOTS)


class _Repo:
    def __init__(self, fail: int = 0):
        self.fail, self.sent = fail, []

    async def report(self, body, *, key, correlation_id):
        if self.fail:
            self.fail -= 1
            raise TransientError("redis down")
        self.sent.append((key, body))
        return "1-0"


def _new_step() -> InstrumentSpec:
    return dataclasses.replace(LOTS["BTCUSDT"], qty_step=Decimal("0.01"),
                               min_order_qty=Decimal("0.01"))


def test_the_refresh_reports_each_field_it_watches_with_the_spec_names():
    assert spec_changes(LOTS, LOTS, WATCHED) == {}
    assert spec_changes(LOTS, {"BTCUSDT": _new_step()}, WATCHED) == {
        "BTCUSDT": "qty_step 0.001→0.01, min_order_qty 0.001→0.01"}
    assert spec_changes({}, LOTS, WATCHED) == {"BTCUSDT": "new"}
    hourly = dataclasses.replace(LOTS["BTCUSDT"], funding_interval_min=60)
    assert spec_changes(LOTS, {"BTCUSDT": hourly}, WATCHED) == {
        "BTCUSDT": "funding_interval_min 480→60"}
    delisted = dataclasses.replace(LOTS["BTCUSDT"], delivery_time_ms=1_800_000_000_000)
    assert spec_changes(LOTS, {"BTCUSDT": delisted}, WATCHED) == {
        "BTCUSDT": "delivery_time_ms 0→1800000000000"}
    delivering = dataclasses.replace(LOTS["BTCUSDT"], status="Delivering")
    assert spec_changes(LOTS, {"BTCUSDT": delivering}, WATCHED) == {
        "BTCUSDT": "status Trading→Delivering"}
    assert filters(delivering).status == "Delivering"       # what InstrumentsChanged carries


async def test_a_change_is_used_published_and_kept_pending_while_the_bus_refuses():
    pf, repo = _Preflight(), _Repo(fail=1)
    r = InstrumentRefresher(_Venue({"BTCUSDT": _new_step()}), pf, repo,  # type: ignore[arg-type]
                            settings(symbols="BTCUSDT"))
    with pytest.raises(TransientError):
        await r.refresh_once()
    assert pf.specs["BTCUSDT"].qty_step == Decimal("0.01")      # used at once
    assert r.pending is not None and not repo.sent
    assert await r.refresh_once() is None                     # no new difference ...
    await r._publish()                                        # ... the pending one goes out
    assert r.pending is None and len(repo.sent) == 1
    key, body = repo.sent[0]
    assert isinstance(body, InstrumentsChanged) and key.startswith("instruments:")
    assert [(f.symbol, f.qty_step) for f in body.instruments] == [("BTCUSDT", Decimal("0.01"))]
