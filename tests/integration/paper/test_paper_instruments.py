"""The paper venue's instruments are the market's (:mod:`tm_app.paper_instruments`): read from the
market's public instruments-info when ``tm paper`` starts, and followed by the relay, so a
symbol the project does not ship can be paper-traded and a delisting the market announces is
carried out on the paper book. "The market" is a history-mode exchange sim (its public
instruments-info, changed through its ``POST /sim/instruments`` as Bybit would change its own);
the paper venue is a live-feed sim; both over HTTP."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from pybit.unified_trading import HTTP
from tm_app.paper_instruments import MarketInstrumentsError, answer, fetch_specs, read_answer
from tm_app.paper_relay import BarRelay
from tm_common.history import BAR_INTERVAL_MS
from tm_common.instruments import DEFAULT_INSTRUMENTS
from tm_common.testing.fixtures import private_tmp_path  # noqa: F401 - replaces tmp_path here
from tm_common.testing.instrument_history import (
    UNSHIPPED_SYMBOL,
    unshipped_spec,
    write_history,
    write_instrument,
)
from tm_common.testing.redis import free_port
from tm_common.testing.sim import KEY, SECRET, run_sim

SYM = UNSHIPPED_SYMBOL
T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC


def _market(tmp_path):
    """A market listing only ``SYM`` (a symbol the project does not ship)."""
    history = tmp_path / "market-history"
    write_history(history, start_ms=T0, n_bars=60)
    write_instrument(history, unshipped_spec())
    return run_sim(tmp_path, TM_SIM_SYMBOLS=f'["{SYM}"]', TM_SIM_HISTORY_DIR=str(history))


def test_the_market_s_specs_are_read_and_an_unlisted_symbol_is_named(tmp_path):
    with _market(tmp_path) as market:
        specs = asyncio.run(fetch_specs(market.url, [SYM]))
        assert specs == {SYM: unshipped_spec()}
        with pytest.raises(MarketInstrumentsError, match="XRPUSDT"):
            asyncio.run(fetch_specs(market.url, [SYM, "XRPUSDT"]))
        # being delisted, the market lists it only when asked for that status: still found
        delivering = replace(unshipped_spec(), status="Delivering")
        httpx.post(f"{market.url}/sim/instruments", json=answer({SYM: delivering}),
                   timeout=5).raise_for_status()
        assert asyncio.run(fetch_specs(market.url, [SYM])) == {SYM: delivering}
    with pytest.raises(httpx.HTTPError):                 # the market is gone
        asyncio.run(fetch_specs(market.url, [SYM], timeout_s=2))


def test_the_paper_venue_follows_the_market_s_delisting(tmp_path):
    """The paper venue starts with the market's filters (the file ``tm paper`` writes); a
    position is opened; the market then announces a delisting already due: the relay's next
    read gives it to the venue, which closes the position (a ``Delivery`` execution) and
    answers ``Closed``. A second read with nothing new posts nothing."""
    with _market(tmp_path) as market:
        specs = asyncio.run(fetch_specs(market.url, [SYM]))
        listed = tmp_path / "instruments.json"
        listed.write_text(json.dumps(answer(specs)))
        with run_sim(tmp_path, TM_SIM_FEED="live", TM_SIM_SYMBOLS=f'["{SYM}"]',
                     TM_SIM_INSTRUMENTS_FILE=str(listed)) as venue:
            row = venue.get("/v5/market/instruments-info", category="linear",
                            symbol=SYM)["result"]["list"][0]
            assert row["lotSizeFilter"]["qtyStep"] == "1"
            bar = {"symbol": SYM, "open_time_ms": T0, "open": "2", "high": "2", "low": "2",
                   "close": "2", "volume": "10"}
            httpx.post(f"{venue.url}/sim/bars", json={"bars": [bar]}, timeout=5).raise_for_status()
            http = HTTP(api_key=KEY, api_secret=SECRET, max_retries=1)
            http.endpoint = venue.url
            http.place_order(category="linear", symbol=SYM, side="Buy", orderType="Market",
                             qty="100")
            due = T0 + BAR_INTERVAL_MS                       # the venue's clock: that close
            delisted = replace(unshipped_spec(), delivery_time_ms=due, status="Delivering")
            httpx.post(f"{market.url}/sim/instruments", json=answer({SYM: delisted}),
                       timeout=5).raise_for_status()
            relay = BarRelay("redis://unused", "x:", venue.url, market_url=market.url,
                             symbols=(SYM,), instruments_file=listed)

            async def follow() -> list[str]:
                async with httpx.AsyncClient(base_url=venue.url, timeout=10) as client:
                    return await relay.follow_instruments(client)

            assert asyncio.run(follow()) == [SYM]
            deliveries = [e for e in venue.get("/sim/executions")["list"]
                          if e["execType"] == "Delivery"]
            assert [(e["side"], Decimal(e["execQty"]), e["execTime"]) for e in deliveries] == [
                ("Sell", Decimal(100), str(due))]
            row = venue.get("/v5/market/instruments-info", category="linear", symbol=SYM,
                            status="Closed")["result"]["list"][0]
            assert (row["status"], row["deliveryTime"]) == ("Closed", str(due))
            assert asyncio.run(follow()) == [] and relay.counts.instruments == {SYM: 1}
            assert not relay.counts.errors
            # the run's file holds the market's answer too (the market, its clock past the
            # time, has delivered it already): a restarted venue and the shadow book read it
            assert read_answer(listed) == {SYM: replace(delisted, status="Closed")}


def test_a_restarted_paper_venue_is_given_what_the_relay_learnt(tmp_path):
    """``tm paper`` started while the market did not answer (shipped filters, no file); the
    relay later reads a new qty step, gives it to the venue and writes the run's file. The
    venue is then restarted on its port, with the shipped filters again: the relay's check sees
    its clock behind and gives it the market's filters with the newest bars, before any order
    could be sized on the old step."""
    sym = "BTCUSDT"
    step = replace(DEFAULT_INSTRUMENTS[sym], qty_step=Decimal("0.01"),
                   min_order_qty=Decimal("0.01"))
    run_file = tmp_path / "paper" / "instruments.json"
    for d in ("paper", "market", "venue"):
        (tmp_path / d).mkdir()
    bar = {"symbol": sym, "open_time_ms": T0, "open": "90000", "high": "90000",
           "low": "90000", "close": "90000", "volume": "10"}
    port = free_port()

    def qty_step(venue) -> str:
        return venue.get("/v5/market/instruments-info", category="linear",
                         symbol=sym)["result"]["list"][0]["lotSizeFilter"]["qtyStep"]

    with run_sim(tmp_path / "market") as market:
        httpx.post(f"{market.url}/sim/instruments", json=answer({sym: step}),
                   timeout=5).raise_for_status()
        relay = BarRelay("redis://unused", "x:", f"http://127.0.0.1:{port}",
                         market_url=market.url, symbols=(sym,), instruments_file=run_file)

        async def at(venue, *calls) -> None:
            async with httpx.AsyncClient(base_url=venue.url, timeout=10) as http:
                for call in calls:
                    await call(http)

        live = {"TM_SIM_FEED": "live", "TM_SIM_SYMBOLS": f'["{sym}"]'}
        with run_sim(tmp_path / "venue", port=port, **live) as venue:
            assert qty_step(venue) == "0.001"                       # shipped
            asyncio.run(at(venue, lambda h: relay._push(h, [bar], []),
                           relay.follow_instruments))
            assert qty_step(venue) == "0.01"
            assert read_answer(run_file) == asyncio.run(fetch_specs(market.url, [sym]))
        with run_sim(tmp_path / "venue", port=port, **live) as venue:   # restarted
            assert qty_step(venue) == "0.001"
            asyncio.run(at(venue, relay.check_venue))
            assert qty_step(venue) == "0.01"
            assert venue.get("/sim/clock")["clock_ms"] == T0
    assert relay.counts.repushes == 1 and not relay.counts.errors


def test_tm_paper_names_a_symbol_the_market_does_not_list(tmp_path):
    """Before anything starts: one ``error:`` line naming the symbol, exit 2. (Without the
    market, a symbol whose filters are not shipped is named the same way:
    ``test_paper_smoke.py::test_bad_arguments_are_one_error_line``.)"""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    with _market(tmp_path) as market:
        r = subprocess.run(
            [sys.executable, "-m", "tm_app.stack.main", "paper", "--no-train", "--symbols",
             f"{SYM},XRPUSDT"], text=True, capture_output=True, timeout=60,
            env={**env, "TM_DATA_DIR": str(tmp_path / "tm"), "TM_INGEST_BYBIT_REST_URL": market.url,
                 "TM_REDIS_URL": "redis://127.0.0.1:9"})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: --symbols: the market does not list XRPUSDT"), lines
    assert not (tmp_path / "tm" / "paper" / "instruments.json").exists()


def test_the_market_s_instruments_reach_the_venue_and_the_shadow_book(tmp_path):
    """``tm paper``'s file of the market's instruments is given to the paper venue's process
    and to the shadow book's in-process paper account, so both trade with the market's
    filters (here a symbol the project does not ship)."""
    from tm_app.paper_mesh import PaperConfig, specs
    from tm_app.shadow.venue import PaperVenue

    listed = tmp_path / "instruments.json"
    spec = unshipped_spec(min_notional=Decimal(7))
    listed.write_text(json.dumps(answer({SYM: spec})))
    cfg = PaperConfig(redis_url="redis://127.0.0.1:6379/0", database_url="sqlite+aiosqlite:///x",
                      paper_dir=tmp_path, namespace="tmpaper:x:",
                      market_rest_url="https://api.bybit.com",
                      market_ws_url="wss://stream.bybit.com/v5/public/linear",
                      deribit_url="https://www.deribit.com", symbols=(SYM,), shadow="cand-1",
                      instruments_file=listed)
    env = {s.name: s.env for s in specs(cfg)}
    assert env["exchange_sim"]["TM_SIM_INSTRUMENTS_FILE"] == str(listed)
    assert env["shadow"]["TM_SHADOW_INSTRUMENTS_FILE"] == str(listed)
    book = PaperVenue((SYM,), initial_balance=Decimal(1000), slippage_bps=Decimal(0), seed=1,
                      instruments_file=listed)
    got = book.get_instruments_info(category="linear", symbol=SYM)["result"]["list"]
    assert [e["lotSizeFilter"]["minNotionalValue"] for e in got] == ["7"]
