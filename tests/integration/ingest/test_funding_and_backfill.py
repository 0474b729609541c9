"""Funding and backfill against the exchange sim over HTTP, real Redis and PostgreSQL.

- the funding poller publishes each settled rate once on md.funding and persists it;
- ``tm backfill`` fills an empty database with the sim's bars, funding and BTC DVOL, a rerun adds
  nothing, a rate-limit answer makes it wait and resume; DVOL pages back through Deribit's
  ``continuation``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from decimal import Decimal

import sqlalchemy as sa
from tm_app.backfill import Backfill
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_FUNDING
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.db.tables import bars, dvol, funding
from tm_common.history import load_bars, load_dvol, load_funding
from tm_common.testing.instrument_history import unshipped_spec, write_history, write_instrument
from tm_common.testing.sim import QUIET_FAULTS, run_sim
from tm_ingest.domain.bars import INTERVAL_MS
from tm_ingest.publisher import BarPublisher
from tm_ingest.repository import MarketRepository
from tm_ingest.sources.dvol import DAY_MS, DeribitDvolClient
from tm_ingest.sources.funding import FundingPoller
from tm_ingest.sources.rest import BybitRestClient

SYMS = ("BTCUSDT", "ETHUSDT")
START = 1_677_628_800_000          # 2023-03-01 00:00 UTC: the sim's clock
SINCE = 1_675_209_600_000          # 2023-02-01
FUNDING_MS = 8 * 3600 * 1000


def sim_now(sim) -> int:
    return int(sim.get("/sim/clock")["now_ms"])


async def _rows(engine, table, key) -> list[tuple]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(
            sa.select(table.c.instrument, table.c[key]).order_by(table.c.instrument,
                                                                 table.c[key]))).all()]


async def test_funding_poller_publishes_each_rate_once_and_persists_it(sim, redis_url, namespace,
                                                                        pg_url):
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    await migrate_async(pg_url)
    engine = make_engine(pg_url)
    repo = MarketRepository(engine)
    writer = asyncio.create_task(repo.run())
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    pub = BarPublisher(bus, namespace + "state:ingest")
    await pub.load()
    rest = BybitRestClient(sim.url)

    async def publish(rates):
        out = await pub.publish_funding(rates)
        repo.save_funding(out)
        return out
    poller = FundingPoller(rest, publish, SYMS, last_published=pub.last_funding_ms,
                           clock_ms=lambda: sim_now(sim))
    try:
        first_now = sim_now(sim)
        first = await poller.poll_once()
        assert first == 2 * 21                    # 7 days back: 21 settlements per symbol
        assert await poller.poll_once() == 0      # nothing new: nothing published
        sim.advance(2)                            # 8 h later: one settlement each
        assert await poller.poll_once() == 2
        # a restarted ingest (fresh publisher state from Redis) publishes nothing again
        pub2 = BarPublisher(bus, namespace + "state:ingest")
        await pub2.load()
        again = FundingPoller(rest, pub2.publish_funding, SYMS,
                              last_published=pub2.last_funding_ms, clock_ms=lambda: sim_now(sim))
        assert await again.poll_once() == 0
        await repo.drain()
        entries = [json.loads(f["body"]) | {"id": f["event_id"], "type": f["type"]}
                   for _, f in await bus.entries(MD_FUNDING, 10_000)]
        assert len(entries) == 44 == len({e["id"] for e in entries})
        assert {e["type"] for e in entries} == {"funding.rate"}
        now = sim_now(sim)
        for sym in SYMS:
            want = [(r.time_ms, str(r.rate_decimal)) for r in load_funding(sym)
                    if first_now - 7 * 24 * 3600 * 1000 <= r.time_ms <= now]
            got = [(e["settle_time_ms"], e["rate"]) for e in entries if e["instrument"] == sym]
            assert [t for t, _ in got] == [t for t, _ in want]
            assert all(float(a) == float(b) for (_, a), (_, b) in zip(got, want, strict=True))
        stored = await _rows(engine, funding, "settle_time_ms")
        assert sorted(stored) == sorted((e["instrument"], e["settle_time_ms"]) for e in entries)
    finally:
        writer.cancel()
        await rest.close()
        await bus.close()
        await engine.dispose()


async def test_backfill_from_empty_then_rerun_adds_nothing_and_rate_limits_resume(sim, pg_url):
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    await migrate_async(pg_url)
    engine = make_engine(pg_url)
    client = BybitRestClient(sim.url)
    deribit = DeribitDvolClient(sim.url)
    lines: list[str] = []
    waits: list[float] = []

    async def sleep(s: float) -> None:          # the limit window passes: faults off again
        waits.append(s)
        sim.post("/sim/faults", QUIET_FAULTS)
    try:
        # rate limiting on from the first request: the run must wait, then resume
        sim.post("/sim/faults", {**QUIET_FAULTS, "rate_limit_prob": 1.0})
        res = await Backfill(engine, client, SYMS, SINCE, None, echo=lines.append, sleep=sleep,
                             now_ms=lambda: START + 2 * INTERVAL_MS, dvol=deribit).run()
        assert waits and res.waits == len(waits) >= 1
        assert any("rate limited" in ln and "waiting" in ln for ln in lines)
        stored_bars = await _rows(engine, bars, "open_time_ms")
        want_bars = sorted((s, b.open_time_ms) for s in SYMS for b in load_bars(s, SINCE, START))
        assert stored_bars == want_bars and len(want_bars) == 2 * 28 * 6 + 2
        stored_funding = await _rows(engine, funding, "settle_time_ms")
        want_funding = sorted((s, r.time_ms) for s in SYMS for r in load_funding(s)
                              if SINCE <= r.time_ms <= START + INTERVAL_MS)
        assert stored_funding == want_funding
        assert res.rows[("BTCUSDT", "bars")] == len(want_bars) // 2
        assert any(ln.startswith("BTCUSDT bars") for ln in lines)        # progress per page
        async with engine.connect() as conn:      # the DVOL days known at the sim's clock
            stored_dvol = (await conn.execute(sa.select(dvol.c.day_ms, dvol.c.known_at_ms, dvol.c.value)
                                              .order_by(dvol.c.day_ms))).all()
        want_dvol = [(p.day_ms, p.known_at_ms, float(p.close)) for p in load_dvol()
                     if SINCE <= p.day_ms and p.known_at_ms <= START]
        assert [tuple(r) for r in stored_dvol] == want_dvol and len(want_dvol) == 28
        assert res.rows[("BTC", "dvol")] == 28

        again = await Backfill(engine, client, SYMS, SINCE, None, echo=lines.append,
                               sleep=sleep, now_ms=lambda: START + 2 * INTERVAL_MS,
                               dvol=deribit).run()
        assert again.total == 0
        assert await _rows(engine, bars, "open_time_ms") == stored_bars
        assert await _rows(engine, funding, "settle_time_ms") == stored_funding

        sim.advance(3)                            # newer data: only it is fetched (resumable)
        more = await Backfill(engine, client, SYMS, SINCE, None, echo=lines.append, sleep=sleep,
                              now_ms=lambda: START + 5 * INTERVAL_MS).run()
        assert more.rows[("BTCUSDT", "bars")] == 3 and more.rows[("ETHUSDT", "bars")] == 3
    finally:
        await client.close()
        await deribit.close()
        await engine.dispose()


async def test_dvol_backfill_pages_back_through_deribits_continuation(tmp_path, pg_url):
    """1,500 days of DVOL: more than one answer holds (1,000), so the backfill follows the
    ``continuation`` back to ``--since``; every day lands once, and a rerun adds nothing."""
    first_day, days = 1_577_836_800_000, 1500          # 2020-01-01
    history = tmp_path / "history"
    write_history(history, start_ms=first_day, n_bars=days * 6)
    write_instrument(history, unshipped_spec())
    (history / "BTC_DVOL_1d.csv").write_text("timestamp,dvol_close\n" + "".join(
        f"{first_day + d * DAY_MS},{50 + d % 37}.5\n" for d in range(days)))
    now = first_day + days * DAY_MS                   # the last day is known from here
    since = first_day + 100 * DAY_MS
    with run_sim(tmp_path, TM_SIM_HISTORY_DIR=str(history),
                 TM_SIM_SYMBOLS='["ZZZUSDT"]') as venue:
        venue.post("/sim/reset", {"start_ms": now - INTERVAL_MS})
        await migrate_async(pg_url)
        engine = make_engine(pg_url)
        client, deribit = BybitRestClient(venue.url), DeribitDvolClient(venue.url)
        lines: list[str] = []
        try:
            res = await Backfill(engine, client, (), since, None, echo=lines.append,
                                 now_ms=lambda: now, dvol=deribit).run()
            async with engine.connect() as conn:
                stored = (await conn.execute(sa.select(dvol.c.day_ms, dvol.c.value)
                                             .order_by(dvol.c.day_ms))).all()
            assert [r[0] for r in stored] == [first_day + d * DAY_MS for d in range(100, days)]
            assert [float(r[1]) for r in stored] == [50 + d % 37 + 0.5 for d in range(100, days)]
            pages = [ln for ln in lines if ln.startswith("BTC dvol")]
            assert len(pages) == 2 and res.rows[("BTC", "dvol")] == days - 100, pages
            again = await Backfill(engine, client, (), since, None, echo=lines.append,
                                   now_ms=lambda: now, dvol=deribit).run()
            assert again.total == 0
        finally:
            await client.close()
            await deribit.close()
            await engine.dispose()


def test_tm_backfill_command_and_its_errors(sim, pg_url):
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    env = {**os.environ, "TM_DATABASE_URL": pg_url, "TM_INGEST_BYBIT_REST_URL": sim.url,
           "TM_INGEST_DERIBIT_URL": sim.url}
    tm = [sys.executable, "-m", "tm_app.stack.main"]
    ok = subprocess.run([*tm, "backfill", "--since", "2023-02-20", "--until", "2023-03-01",
                         "--symbols", "BTCUSDT"], env=env, capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "done: " in ok.stdout and "BTCUSDT bars" in ok.stdout
    assert "and BTC DVOL" in ok.stdout and "BTC dvol" in ok.stdout
    no_dvol = subprocess.run([*tm, "backfill", "--since", "2023-02-20", "--until", "2023-03-01",
                              "--symbols", "BTCUSDT", "--no-dvol", "--deribit-url", "nope"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert no_dvol.returncode == 0 and "dvol" not in no_dvol.stdout.lower(), no_dvol.stderr
    bad_url = subprocess.run([*tm, "backfill", "--since", "2023-02-20", "--deribit-url", "nope"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert bad_url.returncode == 2 and "--deribit-url must be an http(s) URL" in bad_url.stderr
    bad = subprocess.run([*tm, "backfill", "--since", "yesterday"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "not a date" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    # older than what is stored: the bars before it are fetched first, from a venue that is down
    down = subprocess.run([*tm, "backfill", "--since", "2023-02-10", "--until", "2023-03-01",
                           "--symbols", "BTCUSDT", "--url", "http://127.0.0.1:9", "--retries",
                           "2"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert down.stderr.startswith("error: BTCUSDT bars: gave up after 2 attempts")
    assert len(down.stderr.strip().splitlines()) == 1


async def test_live_ingest_service_polls_funding_into_the_stream_and_the_table(
        sim, redis_url, namespace, pg_url):
    """The service's own wiring (``background()["funding"]`` and the DB writer), restarted once."""
    from tm_ingest.config import IngestSettings
    from tm_ingest.service import IngestService

    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    await migrate_async(pg_url)
    engine = make_engine(pg_url)
    settings = IngestSettings(mode="live", bybit_rest_url=sim.url, symbols="BTCUSDT",
                              funding_poll_s=0.2, dvol_enabled=False, namespace=namespace,
                              redis_url=redis_url, database_url=pg_url)
    bus = RedisStreamsBus(redis_url, prefix=namespace)

    async def run_once(seconds: float) -> IngestService:
        svc = IngestService(settings, bus, repo=MarketRepository(engine),
                            clock=lambda: sim_now(sim) * 1_000_000)
        tasks = svc.background()
        stop = asyncio.Event()
        running = [asyncio.create_task(tasks[n](stop)) for n in ("funding", "db-writer")]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 15)
        return svc
    try:
        first = await run_once(1.5)
        assert first.status()["funding_published"] == 21
        sim.advance(2)
        second = await run_once(1.5)               # a restart: only the new settlement
        assert second.status()["funding_published"] == 1
        entries = await bus.entries(MD_FUNDING, 10_000)
        assert len(entries) == 22 == len({f["event_id"] for _, f in entries})
        assert len(await _rows(engine, funding, "settle_time_ms")) == 22
    finally:
        await bus.close()
        await engine.dispose()


def test_sim_funding_history_route_is_bybit_shaped_and_bounded_by_the_clock(sim):
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    now = sim_now(sim)
    doc = sim.get("/v5/market/funding/history", category="linear", symbol="BTCUSDT", limit=5)
    assert doc["retCode"] == 0
    rows = doc["result"]["list"]
    times = [int(r["fundingRateTimestamp"]) for r in rows]
    assert len(rows) == 5 and times == sorted(times, reverse=True) and times[0] <= now
    assert {r["symbol"] for r in rows} == {"BTCUSDT"}
    shipped = {f.time_ms: f.rate_decimal for f in load_funding("BTCUSDT")}
    assert all(shipped[int(r["fundingRateTimestamp"])] == Decimal(r["fundingRate"]) for r in rows)
    window = sim.get("/v5/market/funding/history", category="linear", symbol="BTCUSDT",
                     startTime=SINCE, endTime=now + 10 * FUNDING_MS)["result"]["list"]
    assert min(int(r["fundingRateTimestamp"]) for r in window) >= SINCE
    assert max(int(r["fundingRateTimestamp"]) for r in window) <= now      # nothing from later
    for bad in ({"startTime": SINCE}, {"limit": 201}, {"symbol": "NOPEUSDT"}):
        q = {"category": "linear", "symbol": "BTCUSDT", **bad}
        assert sim.get("/v5/market/funding/history", **q)["retCode"] != 0
