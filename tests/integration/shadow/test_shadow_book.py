"""A shadow book against the real Redis: it follows production's market streams, trades the
candidate on its own paper account in its own namespace, equals the in-process backtest of the
same model, writes its evidence to the registry, and never reaches a real venue."""

from __future__ import annotations

import asyncio

import pytest
from tm_app.backtest import RunConfig, run_backtest
from tm_app.record import RunRecord
from tm_app.shadow.book import ShadowBook
from tm_app.shadow.config import ShadowSettings
from tm_app.shadow.venue import NotAPaperVenue, PaperVenue, require_paper
from tm_app.venue import InProcessBybit
from tm_common.bus.redis import RedisStreamsBus
from tm_common.db import make_engine
from tm_common.history import load_bars
from tm_common.models.evidence import SHADOW_KEY, shadow_records
from tm_common.models.registry import ModelRegistry

from .conftest import START, TRADING_ENV, N, publish_market, window


async def run_book(redis_url: str, source_ns: str, db_url: str, candidate: str,
                   **values) -> tuple[ShadowBook, RunRecord]:
    settings = ShadowSettings.from_values(namespace=source_ns, candidate=candidate,
                                          database_url=db_url, redis_url=redis_url,
                                          flush_after_s=0.2, **values)
    bus = RedisStreamsBus(redis_url, prefix=settings.namespace_for(candidate))
    source = RedisStreamsBus(redis_url, prefix=source_ns)
    engine = make_engine(db_url)
    book = ShadowBook(settings, bus=bus, source=source, registry=ModelRegistry(engine))
    await book.open()
    while await book.step(block_ms=300) or book.bar_times < N:
        pass
    await book.write_evidence()
    rec = await book.record()
    await bus.close(), await source.close(), await engine.dispose()
    return book, rec


async def test_shadow_equals_the_backtest_of_its_candidate(redis_url, namespace, registry_url,
                                                           monkeypatch, tmp_path):
    for k, v in TRADING_ENV.items():
        monkeypatch.setenv(k, v)
    start, end = window()
    cfg = RunConfig(start_ms=start, end_ms=end, database_url=registry_url, extra_env=TRADING_ENV)
    await publish_market(redis_url, namespace, cfg)

    book, shadow = await run_book(redis_url, namespace, registry_url, "v1")
    engine = make_engine(registry_url)
    reg = ModelRegistry(engine)
    await reg.promote("v1", "test: production = the shadowed candidate")
    await engine.dispose()
    backtest = await run_backtest(cfg)

    got, want = shadow.trading_view(), backtest.trading_view()
    assert want["orders"], "the window must trade"
    for key in ("orders", "fills", "equity", "tiers"):
        assert got[key] == want[key], f"{key} differ between the shadow book and the backtest"
    assert book.mirror.counts.batches == N and book.mirror.counts.partial == 0

    # the report: production and the challenger side by side, clearly labelled
    from tm_app.mesh import ShadowRun
    from tm_app.report.html import write_report
    summary = write_report(backtest, tmp_path / "report", initial_equity=100000.0, meta={},
                           challenger=ShadowRun("v1", book.bus.names.prefix, shadow, {}))
    ch = summary["challenger"]
    assert ch["candidate"] == "v1" and ch["counts"]["orders"] == len(shadow.orders)
    assert ch["stats"]["total"]["final_equity"] == summary["stats"]["total"]["final_equity"]
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Production vs challenger (shadow book)" in page
    assert "challenger v1 (shadow book, paper)" in page
    for chart in ("chart-compare", "chart-challenger-positions", "chart-challenger-tiers"):
        assert f'id="{chart}"' in page                     # drawn by uPlot from the data below
    assert '"candidate":"v1"' in page and "data:image/png" not in page


async def test_evidence_is_written_and_a_restart_replaces_it(redis_url, namespace, registry_url):
    start, end = window()
    await publish_market(redis_url, namespace,
                         RunConfig(start_ms=start, end_ms=end, database_url=registry_url))
    book, rec = await run_book(redis_url, namespace, registry_url, "newest-refused",
                               mode="paper")
    assert book.candidate is not None and book.candidate.version == "v2"   # newest refused
    assert book.bus.names.prefix == f"{namespace}shadow:newest-refused:"
    again, rec2 = await run_book(redis_url, namespace, registry_url, "newest-refused",
                                 mode="paper")
    assert rec2.trading_view() == rec.trading_view()      # wiped and replayed: the same run
    engine = make_engine(registry_url)
    m = (await ModelRegistry(engine).get("v2")).metrics
    await engine.dispose()
    runs = shadow_records(m)
    assert len(m[SHADOW_KEY]) == 1 and len(runs) == 1    # the restart replaced its record
    r = runs[0]
    assert (r.mode, r.bars, r.first_bar_ms, r.last_bar_ms) == ("paper", N, start, end)
    assert r.orders == len(rec.orders) and r.days == pytest.approx((N - 1) / 6)
    assert not any(e.body.instrument not in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
                   for e in rec.streams["md.bar"])
    # production's namespace holds only what production published: the book wrote nothing there
    prod = await RunRecord.from_bus(RedisStreamsBus(redis_url, prefix=namespace))
    assert not prod.signals and not prod.orders and not prod.snapshots


async def test_a_forward_record_covers_only_the_bars_after_the_candidates_registration(
        redis_url, namespace, registry_url, monkeypatch):
    """A paper book trades every bar it mirrors (a warm-up's, production's history), but prices
    that existed when the candidate was registered are no forward evidence: its record starts
    at the first bar opening at or after the registration. A replay's record covers all."""
    from tm_app.stats import run_stats, stats_from
    from tm_signal.testing import register_signal_versions

    for k, v in TRADING_ENV.items():
        monkeypatch.setenv(k, v)
    start, end = window()
    await publish_market(redis_url, namespace,
                         RunConfig(start_ms=start, end_ms=end, database_url=registry_url))
    registered = start + 70 * 4 * 3600_000 - 1          # bars 70.. are after it (it trades from ~60)
    engine = make_engine(registry_url)
    await register_signal_versions(ModelRegistry(engine, clock_ms=lambda: registered),
                                   first_bar_ms=load_bars("BTCUSDT")[START - 250].open_time_ms,
                                   seeds={"v3": 1},
                                   metrics={"gate_passed": True, "why": "gates passed"})
    await engine.dispose()

    book, rec = await run_book(redis_url, namespace, registry_url, "v3", mode="paper")
    assert book.bar_times == N and book.evidence_from_ms == registered
    r = book.evidence
    after = sorted({b.open_time_ms for b in rec.bars if b.open_time_ms >= registered})
    assert len(after) == N - 70
    assert (r.first_bar_ms, r.last_bar_ms, r.bars) == (after[0], end, N - 70)
    part = stats_from(rec, 100000.0, registered)
    assert r.ic == pytest.approx(part["signal_ic"]["all"], nan_ok=True)
    assert r.orders == part["orders"] == sum(o.bar_time_ms >= registered for o in rec.orders)
    assert r.orders < len(rec.orders), "the window must trade before the registration too"
    before = [s for s in rec.snapshots if s.bar_time_ms < registered][-1]
    after_eq = [s for s in rec.snapshots if s.bar_time_ms >= registered][-1]
    assert r.total_return == pytest.approx(float(after_eq.equity) / float(before.equity) - 1)
    # from the first bar, the same numbers as the report's (which also attributes the PnL)
    whole, full = stats_from(rec, 100000.0), run_stats(rec, 100000.0)
    assert whole["total"] == pytest.approx({k: full["total"][k] for k in whole["total"]},
                                           nan_ok=True)
    assert whole["signal_ic"] == full["signal_ic"] and whole["orders"] == len(rec.orders)

    replay, _ = await run_book(redis_url, namespace, registry_url, "v3", mode="replay",
                               book_namespace=f"{namespace}shadow:replay:")
    assert replay.evidence_from_ms == 0 and replay.evidence.bars == N


async def test_an_auto_book_takes_over_a_newly_registered_candidate(redis_url, namespace,
                                                                   registry_url):
    """``auto`` shadows the newest refused candidate until one whose gates passed is
    registered; the next check writes the old one's record and trades the new one from the
    start of production's streams, in the same namespace, wiped."""
    from tm_signal.testing import register_signal_versions

    start, end = window()
    await publish_market(redis_url, namespace,
                         RunConfig(start_ms=start, end_ms=end, database_url=registry_url))
    settings = ShadowSettings.from_values(namespace=namespace, candidate="auto", mode="paper",
                                          database_url=registry_url, redis_url=redis_url,
                                          flush_after_s=0.2)
    bus = RedisStreamsBus(redis_url, prefix=settings.namespace_for("auto"))
    source = RedisStreamsBus(redis_url, prefix=namespace)
    engine = make_engine(registry_url)
    registry = ModelRegistry(engine)
    book = ShadowBook(settings, bus=bus, source=source, registry=registry)
    try:
        await book.open()
        assert book.candidate.version == "v2"                  # no candidate waits: refused
        while await book.step(block_ms=300) or book.bar_times < N:
            pass
        assert not await book.follow_candidate()               # nothing new
        first = await book.record()
        await register_signal_versions(
            ModelRegistry(engine, clock_ms=lambda: start - 1), seeds={"v3": 3},
            first_bar_ms=load_bars("BTCUSDT")[START - 250].open_time_ms,
            metrics={"gate_passed": True, "why": "gates passed"})
        assert await book.follow_candidate()
        assert book.candidate.version == "v3" and book.switches == ["v2 → v3"]
        assert book.bar_times == 0 and not (await book.record()).orders   # wiped
        while await book.step(block_ms=300) or book.bar_times < N:
            pass
        await book.write_evidence()
        second = await book.record()
        assert second.bars and len(second.bars) == len(first.bars)      # the same window again
        runs = {v: shadow_records((await registry.get(v)).metrics) for v in ("v2", "v3")}
        assert [(r.bars, r.mode) for r in runs["v2"]] == [(N, "paper")]  # written at the switch
        assert [(r.bars, r.mode) for r in runs["v3"]] == [(N, "paper")]
        assert book.status()["switches"] == ["v2 → v3"]
    finally:
        await bus.close(), await source.close(), await engine.dispose()


def test_a_shadow_book_takes_only_its_paper_account():
    with pytest.raises(NotAPaperVenue):
        require_paper(InProcessBybit.from_settings())
    paper = PaperVenue(("BTCUSDT",), initial_balance=1000, slippage_bps=2, seed=1)
    assert require_paper(paper) is paper
    from tm_app.shadow.app import build
    with pytest.raises(ValueError, match="paper account"):
        build(ShadowSettings.from_values(), bus=None, registry=object(), venue=paper)
    with pytest.raises(ValueError, match="must contain 'shadow'"):
        ShadowSettings.from_values(book_namespace="tm:")
    with pytest.raises(ValueError, match="production's"):
        ShadowSettings.from_values(namespace="tm:shadow:", book_namespace="tm:shadow:") \
            .namespace_for("v1")


async def test_a_book_never_writes_into_production_namespace(redis_url):
    s = ShadowSettings.from_values()
    with pytest.raises(ValueError, match="production's namespace"):
        ShadowBook(s, bus=RedisStreamsBus(redis_url, prefix="tm:"),
                   source=RedisStreamsBus(redis_url, prefix="tm:"), registry=None)
    await asyncio.sleep(0)


async def test_a_book_sends_nothing_to_the_configured_venue(redis_url, namespace, registry_url,
                                                            monkeypatch, tmp_path):
    """The process environment names a venue (here a simulator standing in for Bybit, with
    keys); the book trades, and that venue sees no order, no execution, no position."""
    from tm_common.testing.sim import KEY, SECRET, run_sim

    for k, v in TRADING_ENV.items():
        monkeypatch.setenv(k, v)
    start, end = window()
    await publish_market(redis_url, namespace,
                         RunConfig(start_ms=start, end_ms=end, database_url=registry_url))
    with run_sim(tmp_path) as venue:
        monkeypatch.setenv("TM_EXECUTOR_BYBIT_REST_URL", venue.url)
        monkeypatch.setenv("TM_EXECUTOR_BYBIT_API_KEY", KEY)
        monkeypatch.setenv("TM_EXECUTOR_BYBIT_API_SECRET", SECRET)
        book, rec = await run_book(redis_url, namespace, registry_url, "v1")
        assert len(rec.orders) > 0 and len(rec.fills) > 0      # the book traded, on paper
        http = venue.session()
        for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
            assert http.get_executions(category="linear", symbol=symbol)["result"]["list"] == []
            assert http.get_open_orders(category="linear", symbol=symbol)["result"]["list"] == []
            pos = http.get_positions(category="linear", symbol=symbol)["result"]["list"]
            assert all(float(p["size"]) == 0 for p in pos)


async def test_a_book_beside_an_armed_mainnet_production_stays_on_paper(redis_url, namespace,
                                                                      registry_url, monkeypatch):
    """Production's environment names Bybit mainnet (REST and private WebSocket) and is not
    armed here: the book neither needs arming nor reaches Bybit; it trades on its paper account."""
    for k, v in TRADING_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("TM_EXECUTOR_BYBIT_REST_URL", "https://api.bybit.com")
    monkeypatch.setenv("TM_EXECUTOR_BYBIT_PRIVATE_WS_URL", "wss://stream.bybit.com/v5/private")
    monkeypatch.delenv("TM_LIVE_TRADING", raising=False)
    start, end = window()
    await publish_market(redis_url, namespace,
                         RunConfig(start_ms=start, end_ms=end, database_url=registry_url))
    book, rec = await run_book(redis_url, namespace, registry_url, "v1")
    assert len(rec.fills) > 0 and book.venue is not None
    assert book.venue.get_executions(category="linear", symbol="BTCUSDT")["result"]["list"]
