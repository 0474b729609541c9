"""The shadow book follows the paper run's instruments file (:mod:`tm_app.shadow.instruments`):
when ``tm paper``'s relay rewrites it (here: the market announcing a delisting of a symbol the
book holds), the book's paper account, executor and risk take it before the next bar time, so
a challenger is delisted as production's paper book is: its position is delivered at the
delisting time and the delivery is booked as a fill."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tm_app.backtest import RunConfig
from tm_app.paper_instruments import answer, write_answer
from tm_app.shadow.book import ShadowBook
from tm_app.shadow.config import ShadowSettings
from tm_app.shadow.mirror import Batch
from tm_app.shadow.venue import PaperVenue
from tm_common.bus.redis import RedisStreamsBus
from tm_common.db import make_engine
from tm_common.history import BAR_INTERVAL_MS
from tm_common.instruments import DEFAULT_INSTRUMENTS
from tm_common.models.registry import ModelRegistry

from .conftest import TRADING_ENV, N, publish_market, window

SYM = "BTCUSDT"


def _size(venue: PaperVenue) -> Decimal:
    rows = venue.get_positions(category="linear", symbol=SYM)["result"]["list"]
    return sum((Decimal(p["size"]) for p in rows), Decimal(0))


async def test_a_delisting_written_to_the_file_is_carried_out_in_the_book(
        redis_url, namespace, registry_url, monkeypatch, tmp_path):
    for k, v in TRADING_ENV.items():
        monkeypatch.setenv(k, v)
    start, end = window()
    await publish_market(redis_url, namespace, RunConfig(start_ms=start, end_ms=end,
                                                         database_url=registry_url))
    listed = tmp_path / "instruments.json"
    specs = {s: DEFAULT_INSTRUMENTS[s] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")}
    write_answer(listed, answer(specs))
    settings = ShadowSettings.from_values(namespace=namespace, candidate="v1",
                                          database_url=registry_url, redis_url=redis_url,
                                          flush_after_s=0.2, instruments_file=listed)
    bus = RedisStreamsBus(redis_url, prefix=settings.namespace_for("v1"))
    source = RedisStreamsBus(redis_url, prefix=namespace)
    engine = make_engine(registry_url)
    try:
        book = ShadowBook(settings, bus=bus, source=source, registry=ModelRegistry(engine))
        await book.open()
        venue = book.venue
        assert venue is not None
        batches: list[Batch] = []
        while len(batches) < N:
            batches += await book.mirror.read(300)
        held = 0
        while _size(venue) == 0 and held < N - 6:
            await book.apply(batches[held])
            held += 1
        held -= 1
        assert _size(venue) != 0, "the window must hold a BTC position early enough"
        opened_ms = batches[held].bar_time_ms
        assert opened_ms is not None
        due = opened_ms + 4 * BAR_INTERVAL_MS                 # the close of the bar 3 later
        write_answer(listed, answer({**specs, SYM: replace(specs[SYM], delivery_time_ms=due,
                                                           status="Delivering")}))
        for b in batches[held + 1:]:
            await book.apply(b)

        assert book.instruments_followed == {SYM: 1}
        assert book.status()["instruments"] == {"file": str(listed), "followed": {SYM: 1},
                                                "error": None}
        assert _size(venue) == 0
        info = venue.get_instruments_info(category="linear", symbol=SYM,
                                          status="Closed")["result"]["list"]
        assert [(e["status"], e["deliveryTime"]) for e in info] == [("Closed", str(due))]
        rec = await book.record()
        delivered = [f for f in rec.fills if f.intent_id.startswith(f"delivery:{SYM}:")]
        assert [(f.exec_time_ms, f.fee) for f in delivered] == [(due, Decimal(0))]
        assert not [f for f in rec.fills if f.instrument == SYM and f.exec_time_ms > due]
        last = rec.snapshots[-1]
        assert not [p for p in last.positions if p.instrument == SYM and p.qty != 0]
        # unchanged afterwards: nothing taken again
        assert book.follow_instruments(venue) == []
    finally:
        await bus.close(), await source.close(), await engine.dispose()


async def test_an_open_retried_still_serves_the_file(redis_url, namespace, registry_url,
                                                     tmp_path):
    """``run`` retries ``open`` (the registry or Redis was not there): the account built by the
    retry serves the file's filters too, not the shipped ones."""
    listed = tmp_path / "instruments.json"
    write_answer(listed, answer({SYM: replace(DEFAULT_INSTRUMENTS[SYM], qty_step=Decimal("0.01"),
                                                min_order_qty=Decimal("0.01"))}))
    settings = ShadowSettings.from_values(namespace=namespace, candidate="v1",
                                          database_url=registry_url, redis_url=redis_url,
                                          instruments_file=listed, symbols=[SYM])
    bus = RedisStreamsBus(redis_url, prefix=settings.namespace_for("v1"))
    source = RedisStreamsBus(redis_url, prefix=namespace)
    engine = make_engine(registry_url)
    try:
        book = ShadowBook(settings, bus=bus, source=source, registry=ModelRegistry(engine))
        for _ in range(2):
            await book.open()
            assert book.venue is not None
            row = book.venue.get_instruments_info(category="linear",
                                                  symbol=SYM)["result"]["list"][0]
            assert row["lotSizeFilter"]["qtyStep"] == "0.01"
    finally:
        await bus.close(), await source.close(), await engine.dispose()
