"""``tm paper`` end to end, offline: a history-mode exchange sim plays "Bybit mainnet public"
(REST klines + public WebSocket) for ingest, while the paper venue is a second sim in live-feed
mode. The run is short (``--duration``); the test advances "mainnet" during it and checks that
bars arrived, the venue's marks followed them, an order on the venue filled at the live price
with the slippage, nothing reached "mainnet", ``tm status`` answered and a report was written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis
from pybit.unified_trading import HTTP
from tm_app.paper_instruments import answer
from tm_app.paper_mesh import SIM_KEY, SIM_SECRET, PaperConfig, specs
from tm_common.bus.streams import MD_BAR, Streams
from tm_common.history import BAR_INTERVAL_MS
from tm_common.instruments import DEFAULT_INSTRUMENTS
from tm_common.ports import SERVICE_PORTS
from tm_common.testing.fixtures import private_tmp_path  # noqa: F401 - replaces tmp_path here
from tm_common.testing.redis import delete_namespace, free_port
from tm_common.testing.sim import run_sim
from tm_common.testing.wait import wait_for

T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC: "now" on the mainnet stand-in
BACKFILL_BARS = 30
DURATION_S = 40
TM = [sys.executable, "-m", "tm_app.stack.main"]


def _port_offset() -> int:
    """An offset at which every service port is free (other suites use the defaults), and below
    the ephemeral range: a port there may be the local end of any client connection (a Redis
    pool's) for as long as it lives, and a service could not bind it (it was crash-looping)."""
    import socket

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    span = low - 20000 - max(SERVICE_PORTS.values()) - 100          # + the shadow book's
    for _ in range(50):
        off = 20000 - min(SERVICE_PORTS.values()) + free_port() % span
        ok = True
        for p in SERVICE_PORTS.values():
            with socket.socket() as s:
                ok = ok and s.connect_ex(("127.0.0.1", p + off)) != 0
        if ok:
            return off
    raise RuntimeError("no free port range")


def _get(url: str) -> dict:
    return httpx.get(url, timeout=5, trust_env=False).json()


def _account(venue: str) -> dict:
    """The paper venue's book as its ``/status`` counts it."""
    doc = _get(venue + "/status")
    return {k: doc[k] for k in ("orders", "executions", "positions", "wallet_balance", "marks")}


def test_specs_send_orders_to_the_paper_venue_only(tmp_path):
    cfg = PaperConfig(redis_url="redis://127.0.0.1:6379/0", database_url="sqlite+aiosqlite:///x",
                      paper_dir=tmp_path, namespace="tmpaper:x:", market_rest_url="https://api.bybit.com",
                      market_ws_url="wss://stream.bybit.com/v5/public/linear",
                      deribit_url="https://www.deribit.com", symbols=("BTCUSDT",), port_offset=7)
    env = {s.name: s.env for s in specs(cfg)}
    ex = env["executor"]
    assert ex["TM_EXECUTOR_BYBIT_REST_URL"] == "http://127.0.0.1:8115" == cfg.venue_url
    assert ex["TM_EXECUTOR_BYBIT_PRIVATE_WS_URL"] == "ws://127.0.0.1:8115/v5/private"
    assert not [v for k, v in ex.items() if "bybit.com" in v], "the executor knows no other venue"
    assert env["exchange_sim"]["TM_SIM_FEED"] == "live"
    assert env["ingest"]["TM_INGEST_BYBIT_WS_URL"] == "wss://stream.bybit.com/v5/public/linear"
    assert {e["TM_MODE"] for e in env.values()} == {"live"}
    assert {e["TM_NAMESPACE"] for e in env.values()} == {"tmpaper:x:"}


def _env(data_dir, redis_url: str, mainnet) -> dict[str, str]:
    """Ingest's public URLs at the mainnet stand-in; no other TM_ variable of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_") or k.startswith("TM_TEST_")}
    env.update(TM_DATA_DIR=str(data_dir), TM_REDIS_URL=redis_url,
               TM_INGEST_BYBIT_REST_URL=mainnet.url,
               TM_INGEST_BYBIT_WS_URL=mainnet.ws_url + "/v5/public/linear",
               TM_INGEST_DERIBIT_URL=mainnet.url,
               TM_INGEST_BACKFILL_START_MS=str(T0 - BACKFILL_BARS * BAR_INTERVAL_MS))
    return env


def _running(proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, f"tm paper exited with {proc.returncode}"
    return True


def _logs(tmp_path: Path, data_dir: Path) -> str:
    """The tails of ``tm paper``'s output and of the paper venue's log, for a failure."""
    out = []
    for path in (tmp_path / "paper.log", data_dir / "paper" / "logs" / "exchange_sim.log"):
        text = path.read_text(errors="replace")[-2500:] if path.exists() else "(none)"
        out.append(f"--- {path.name}\n{text}")
    return "\n".join(out)


def _venue_has_mainnets_marks(venue: str, mainnet) -> bool:
    return bool(_get(venue + "/sim/clock")["marks"] == mainnet.get("/sim/clock")["marks"])


@pytest.mark.parametrize("args,code,words", [
    (["--equity", "lots"], 2, ["--equity", "'lots'"]),
    (["--equity", "-5"], 2, ["positive"]),
    (["--symbols", "DOGEUSDT"], 2, ["--symbols", "DOGEUSDT"]),
    (["--duration", "0"], 2, ["--duration"]),
    (["--report-only"], 2, ["no paper run recorded"]),
    ([], 1, ["Redis unreachable"]),
])
def test_bad_arguments_are_one_error_line(tmp_path, args, code, words):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    r = subprocess.run([*TM, "paper", "--no-train", *args], text=True, capture_output=True,
                       env={**env, "TM_DATA_DIR": str(tmp_path), "TM_REDIS_URL": "redis://127.0.0.1:9"},
                       timeout=60)
    assert r.returncode == code and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert all(w in lines[0] for w in words), lines


def _seed_refused_candidate(db_path) -> None:
    """A signal candidate the gates refused, in the run's registry: ``tm paper`` shadows it.
    Registered just after the stand-in's "now" (T0, the newest closed bar's open): the
    backfilled bars are history it could have been fitted on, the live bars after it its
    forward evidence."""
    import asyncio

    from tm_common.db import make_engine
    from tm_common.db.migrate import migrate
    from tm_common.models.registry import ModelRegistry
    from tm_signal.testing import signal_bundle

    url = f"sqlite+aiosqlite:///{db_path}"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    migrate(url)

    async def go():
        engine = make_engine(url)
        await ModelRegistry(engine, clock_ms=lambda: T0 + 1).register(
            "signal", "cand-1", signal_bundle("cand-1", first_bar_ms=T0 - 400 * BAR_INTERVAL_MS,
                                              seed=3),
            data_hash="test", features=[], params={}, seed=0,
            metrics={"gate_passed": False, "why": "test: refused"})
        await engine.dispose()
    asyncio.run(go())


@pytest.mark.slow
def test_tm_paper_smoke_run_against_a_mainnet_stand_in(tmp_path, redis_url):
    off = _port_offset()
    venue = f"http://127.0.0.1:{SERVICE_PORTS['exchange_sim'] + off}"
    data_dir = tmp_path / "tm"
    _seed_refused_candidate(data_dir / "paper" / "trade_matrix.db")
    # the market lists BTCUSDT with a launch time of its own: the paper venue must list it too
    listed = {**DEFAULT_INSTRUMENTS, "BTCUSDT": replace(DEFAULT_INSTRUMENTS["BTCUSDT"],
                                                        launch_time_ms=1_585_526_400_000)}
    (tmp_path / "market-instruments.json").write_text(json.dumps(answer(listed)))
    with run_sim(tmp_path, TM_SIM_START_MS=str(T0),
                 TM_SIM_INSTRUMENTS_FILE=str(tmp_path / "market-instruments.json")) as mainnet:
        env = _env(data_dir, redis_url, mainnet)
        t0 = time.monotonic()
        log = open(tmp_path / "paper.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([*TM, "paper", "--duration", str(DURATION_S), "--no-train",
                                 "--port-offset", str(off), "--status-every", "5",
                                 "--out", str(tmp_path / "report")],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            # the backfill reaches the venue: its marks are mainnet's
            try:
                wait_for(lambda: _running(proc) and _venue_has_mainnets_marks(venue, mainnet),
                         timeout_s=240, what="the paper venue's marks = the backfilled bars",
                         interval_s=0.5)
            except AssertionError as e:          # say why: tm paper's and the venue's logs
                raise AssertionError(f"{e}\n{_logs(tmp_path, data_dir)}") from None
            ours = _get(venue + "/v5/market/instruments-info?category=linear")["result"]["list"]
            assert {i["symbol"]: i["launchTime"] for i in ours}["BTCUSDT"] == "1585526400000"
            assert ours == mainnet.get("/v5/market/instruments-info",
                                       category="linear")["result"]["list"]
            def all_up() -> tuple[subprocess.CompletedProcess, dict] | None:
                # a service busy with the backfill (the shadow book replays it in its own
                # loop) may take more than tm status's 1 s to answer on 2 loaded cores
                done = subprocess.run([*TM, "status", "--json", "--timeout-s", "5"], env=env,
                                      capture_output=True, timeout=120, check=False)
                rows = {r["name"]: r for r in json.loads(done.stdout)}
                return (done, rows) if all(r["up"] for r in rows.values()) else None

            status, rows = wait_for(all_up, timeout_s=120,
                                    what="every service answering tm status")
            assert set(rows) == {*SERVICE_PORTS, "shadow"}, rows      # + the challenger's book
            # exit 1 while a service is not ready (--no-train: maybe no model), with its reason
            assert status.returncode == (0 if all(r["ready"] for r in rows.values()) else 1)
            assert all(r["reason"] for r in rows.values() if not r["ready"]), rows
            for _ in range(2):                       # two live bars from "mainnet"
                marks = mainnet.advance(1)["marks"]
                wait_for(lambda m=marks: _get(venue + "/sim/clock")["marks"] == m, timeout_s=60,
                         what="the venue's marks to follow the live bar", interval_s=0.2)
            live = _get(venue + "/sim/clock")
            assert live["clock_ms"] == T0 + 2 * BAR_INTERVAL_MS
            http = HTTP(api_key=SIM_KEY, api_secret=SIM_SECRET, max_retries=1)
            http.endpoint = venue
            http.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                             qty="0.01", orderLinkId="paper-smoke-1")
            trades = [e for e in _get(venue + "/sim/executions")["list"] if e["execType"] == "Trade"]
            fill = [e for e in trades if e["orderLinkId"] == "paper-smoke-1"][0]
            assert Decimal(fill["markPrice"]) == Decimal(live["marks"]["BTCUSDT"])
            for t in trades:           # ours and any the executor placed: the live mark ± 2 bps
                sign = 1 if t["side"] == "Buy" else -1
                ideal = Decimal(t["markPrice"]) * (1 + sign * Decimal("0.0002"))
                assert abs(Decimal(t["execPrice"]) - ideal) < Decimal("0.01") * ideal / 100, t
            assert Decimal(fill["execPrice"]) == (Decimal(fill["markPrice"]) * Decimal("1.0002")
                                                  / Decimal("0.1")).to_integral_value(
                                                      "ROUND_CEILING") * Decimal("0.1")
            venue_live = _get(venue + "/status")["live"]
            print("paper venue feed counts:", venue_live)
            assert proc.wait(timeout=DURATION_S + 120) == 0
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
            log.close()
        smoke_s = time.monotonic() - t0
        assert mainnet.get("/sim/orders")["count"] == 0, "an order reached the mainnet stand-in"
        assert mainnet.get("/sim/executions")["count"] == 0
    out = (tmp_path / "paper.log").read_text()
    print(out[-3000:], f"\nsmoke run: {smoke_s:.1f}s (trading window {DURATION_S}s)")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert (tmp_path / "report" / "report.html").stat().st_size > 1000
    assert report["meta"]["mode"].startswith("paper")
    run = json.loads((data_dir / "paper" / "last-run.json").read_text())
    assert report["meta"]["namespace"] == run["namespace"]
    assert "bars relayed" in out and "Traceback" not in out, out[-2000:]
    published = redis.Redis.from_url(redis_url).xlen(Streams(run["namespace"]).key(MD_BAR))
    assert published == (BACKFILL_BARS + 3) * 3           # 31 backfilled + 2 live, per symbol
    with sqlite3.connect(data_dir / "paper" / "trade_matrix.db") as db:
        assert db.execute("select count(*) from bars").fetchone()[0] == published  # persisted
        assert db.execute("select count(*) from portfolio_snapshots").fetchone()[0] > 0
    # the refused candidate was paper-traded in a shadow book: side by side in the report, and
    # its forward evidence (mode paper) in the registry
    assert report["challenger"]["candidate"] == "cand-1"
    assert report["challenger"]["counts"]["bars"] == published
    with sqlite3.connect(data_dir / "paper" / "trade_matrix.db") as db:
        metrics = json.loads(db.execute("select metrics from model_registry where "
                                        "version = 'cand-1'").fetchone()[0])
    [record] = metrics["_shadow"].values()
    # the book traded all 33 bar times; only the 2 live ones opened after the registration
    assert record["mode"] == "paper" and \
        (record["bars"], record["first_bar_ms"]) == (2, T0 + BAR_INTERVAL_MS)
    relayed = json.loads(report["meta"]["relay"])
    assert relayed["bars"] == (BACKFILL_BARS + 3) * 3 and not relayed["errors"], relayed
    print("relay counts:", relayed)
    assert not (data_dir / "supervisor.json").exists(), "the state file outlived the run"
    again = subprocess.run([*TM, "paper", "--report-only", "--out", str(tmp_path / "again")],
                           env=env, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr
    doc = json.loads((tmp_path / "again" / "report.json").read_text())
    assert doc["meta"]["namespace"] == run["namespace"]
    delete_namespace(redis_url, run["namespace"])
    shutil.rmtree(tmp_path / "report", ignore_errors=True)


@pytest.mark.slow
def test_tm_down_stops_a_paper_run_and_a_restarted_venue_is_the_same_account(tmp_path, redis_url):
    """The paper venue is killed (SIGKILL) during a run: the supervisor restarts it, and it
    comes back from its journal (``<data>/paper/venue-<run>.jsonl``) with the clock, marks and
    account it had, so the relay has nothing to push again; ``tm down`` then stops the run."""
    off = _port_offset()
    venue = f"http://127.0.0.1:{SERVICE_PORTS['exchange_sim'] + off}"
    data_dir = tmp_path / "tm"
    with run_sim(tmp_path, TM_SIM_START_MS=str(T0)) as mainnet:
        env = _env(data_dir, redis_url, mainnet)
        log = open(tmp_path / "paper.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([*TM, "paper", "--duration", "600", "--no-train", "--port-offset",
                                 str(off), "--out", str(tmp_path / "report")],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: _venue_has_mainnets_marks(venue, mainnet), timeout_s=240,
                     what="the backfill at the venue", interval_s=0.5)
            state = json.loads((data_dir / "supervisor.json").read_text())
            assert state["supervisor_pid"] == proc.pid and state["paper"]["venue"] == venue
            killed = state["processes"]["exchange_sim"]["pid"]
            before = _get(venue + "/sim/clock")
            account = _account(venue)
            os.kill(killed, signal.SIGKILL)
            wait_for(lambda: json.loads((data_dir / "supervisor.json").read_text())
                     ["processes"]["exchange_sim"]["pid"] != killed, timeout_s=60,
                     what="the venue restarted", interval_s=0.1)
            after = wait_for(lambda: _get(venue + "/sim/clock"), timeout_s=60,
                             what="the restarted venue answering", interval_s=0.1)
            assert after == before                       # restored, not fresh
            assert _account(venue) == account
            assert _get(venue + "/status")["journal"]["replayed_at_start"] > 0
            down = subprocess.run([*TM, "down"], env=env, capture_output=True, timeout=120)
            assert down.returncode == 0, down.stderr
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
            log.close()
    out = (tmp_path / "paper.log").read_text()
    assert (tmp_path / "report" / "report.html").is_file(), out[-2000:]
    assert not (data_dir / "supervisor.json").exists()
    assert json.loads(json.loads((tmp_path / "report" / "report.json").read_text())
                      ["meta"]["relay"])["repushes"] == 0       # the venue had its bars
    run = json.loads((data_dir / "paper" / "last-run.json").read_text())
    journal = Path(run["venue_journal"])                  # named for the operator
    assert journal.parent == data_dir / "paper" and journal.stat().st_size > 0
    delete_namespace(redis_url, run["namespace"])


def test_tm_paper_resume_continues_the_last_run(tmp_path, redis_url):
    """``tm down`` stops a run with a position on its paper venue; "mainnet" closes a bar while
    it is stopped; ``tm paper --resume`` goes on with the same namespace and account: the venue
    replays its journal (the order and its fill are there; the mesh, with no model, then
    trades the position flat), ingest backfills the bar it
    missed (each bar once in the run's stream), the report covers the whole run. A resume with
    --symbols, or with no run to continue, is one error line."""
    off = _port_offset()
    venue = f"http://127.0.0.1:{SERVICE_PORTS['exchange_sim'] + off}"
    data_dir = tmp_path / "tm"
    bad = subprocess.run([*TM, "paper", "--resume"], capture_output=True, text=True, timeout=60,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("TM_")},
                              "TM_DATA_DIR": str(data_dir), "TM_REDIS_URL": redis_url})
    assert bad.returncode == 2 and "no paper run recorded" in bad.stderr, bad.stderr
    with run_sim(tmp_path, TM_SIM_START_MS=str(T0)) as mainnet:
        env = _env(data_dir, redis_url, mainnet)

        def run(*args: str) -> subprocess.Popen:
            log = open(tmp_path / "paper.log", "ab")  # noqa: SIM115 - the child holds it
            return subprocess.Popen([*TM, "paper", "--duration", "600", "--no-train",
                                     "--port-offset", str(off), "--out",
                                     str(tmp_path / "report"), *args],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)

        def down(proc: subprocess.Popen) -> None:
            assert subprocess.run([*TM, "down"], env=env, capture_output=True,
                                  timeout=120).returncode == 0
            assert proc.wait(timeout=60) == 0

        proc = run()
        try:
            wait_for(lambda: _venue_has_mainnets_marks(venue, mainnet), timeout_s=240,
                     what="the backfill at the venue", interval_s=0.5)
            http = HTTP(api_key=SIM_KEY, api_secret=SIM_SECRET, max_retries=1)
            http.endpoint = venue
            http.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                             qty="0.01", orderLinkId="paper-resume-1")
            account = _account(venue)
            first = json.loads((data_dir / "paper" / "last-run.json").read_text())
            down(proc)
            marks = mainnet.advance(1)["marks"]              # closed while nobody listened
            again = subprocess.run([*TM, "paper", "--resume", "--symbols", "BTCUSDT"], env=env,
                                   capture_output=True, text=True, timeout=60)
            assert again.returncode == 2 and "drop --symbols" in again.stderr, again.stderr
            proc = run("--resume")
            wait_for(lambda: _get(venue + "/sim/clock")["marks"] == marks, timeout_s=240,
                     what="the missed bar at the resumed venue", interval_s=0.5)
            resumed = _account(venue)
            assert account["positions"]["BTCUSDT"] == "0.01"
            assert resumed["orders"] >= account["orders"]
            assert resumed["executions"] >= account["executions"]
            mine = http.get_executions(category="linear", symbol="BTCUSDT",
                                       orderLinkId="paper-resume-1")["result"]["list"]
            assert [e["execQty"] for e in mine] == ["0.01"]         # its account, journaled
            assert _get(venue + "/status")["journal"]["replayed_at_start"] > 0
            down(proc)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    out = (tmp_path / "paper.log").read_text()
    assert "resuming the paper run" in out and "Traceback" not in out, out[-2000:]
    doc = json.loads((data_dir / "paper" / "last-run.json").read_text())
    assert (doc["namespace"], doc["venue_journal"]) == (first["namespace"],
                                                        first["venue_journal"])
    assert len(doc["resumed_at"]) == 1
    bars = redis.Redis.from_url(redis_url).xlen(Streams(doc["namespace"]).key(MD_BAR))
    assert bars == (BACKFILL_BARS + 2) * 3              # the backfill, the missed bar; once each
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["meta"]["namespace"] == doc["namespace"]
    delete_namespace(redis_url, doc["namespace"])
