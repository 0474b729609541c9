"""``tm paper``: paper trading on live prices.

The whole mesh runs as separate processes under the supervisor, as ``tm demo`` does, but ingest
follows Bybit's public WebSocket and REST (``TM_MODE=live``; mainnet public data by default, no
keys; ``TM_INGEST_BYBIT_REST_URL`` / ``TM_INGEST_BYBIT_WS_URL`` move it) and the executor trades
against a local paper venue: the exchange simulator in its live feed (``TM_SIM_FEED=live``), with
the simulator's fee, slippage and funding model. The executor's URL is that venue and nothing
else; no order can reach Bybit.

The paper venue gets its prices from a relay in this process
(:class:`tm_app.paper_relay.BarRelay`): the bars and funding rates ingest publishes are pushed to
the venue, so its marks are the bars ingest received. Intra-bar protection is on: ingest polls
the public ticker every ``TM_INGEST_MARK_POLL_S`` (60 s) onto ``md.mark``, the portfolio values
the book at those marks and risk's breaker acts on them between bar closes (the venue's own
marks stay the bar closes, so a flatten fills there at the last pushed close).

Everything is persisted as in production: each run has its own stream namespace
(``tmpaper:<run id>:``), the services write their usual tables to ``TM_DATABASE_URL`` or to
SQLite under ``<TM_DATA_DIR>/paper/`` (models too: the first run trains into it). The
supervisor's state goes where ``tm up`` puts it, so ``tm status`` works while a run is on,
``tm breaker``/``tm kill`` find its risk service and admin token (generated into
``<TM_DATA_DIR>/admin-token`` when ``TM_ADMIN_TOKEN`` is unset) and ``tm down`` stops it. Every
port is checked before anything starts. The run stops on Ctrl-C, SIGTERM, SIGHUP or
``--duration``; the report
(``reports/paper-<time>/report.html``) is written then, or at any time by ``tm paper
--report-only`` from the run's streams.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from tm_common.bus.signing import local_keys, service_signing_env
from tm_common.settings import CommonSettings, to_env

from tm_app.paper_relay import BarRelay
from tm_app.shadow.spec import book_namespace, shadow_spec
from tm_app.stack import signals
from tm_app.stack.env_scope import basic_env
from tm_app.stack.ports import OFFSET_HINT, check_ports
from tm_app.stack.services import BY_NAME
from tm_app.stack.supervisor import ProcessSpec, Supervisor

PIPELINE = ("exchange_sim", "regime", "signal", "sizer", "risk", "executor", "portfolio")
SIM_KEY, SIM_SECRET = "paper-key", "paper-secret-local-venue-only"
LAST_RUN = "last-run.json"


@dataclass(frozen=True)
class PaperConfig:
    """One paper run. ``market_rest_url``/``market_ws_url``/``deribit_url``: ingest's public
    data; ``backfill_bars``/``backfill_start_ms``: ingest's cold-start backfill (its settings)."""

    redis_url: str
    database_url: str
    paper_dir: Path
    namespace: str
    market_rest_url: str
    market_ws_url: str
    deribit_url: str
    symbols: tuple[str, ...]
    initial_equity: Decimal = Decimal(100000)
    slippage_bps: Decimal = Decimal(2)
    port_offset: int = 0
    backfill_bars: int = 500
    backfill_start_ms: int | None = None
    mark_poll_s: float = 60.0              # ingest's intra-bar ticker marks (0 = off)
    admin_token: str | None = None         # risk's (tm breaker / tm kill)
    admin_token_file: Path | None = None   # where admin_token came from, if the stack made it
    sim_admin_token: str | None = None     # the paper venue's control API (the bar relay's);
    #                                        None: admin_token (a shared TM_ADMIN_TOKEN)
    shadow: str | None = None              # a signal candidate traded in a shadow book beside

    def port(self, name: str) -> int:
        return BY_NAME[name].port + self.port_offset

    @property
    def venue_token(self) -> str | None:
        """The token the paper venue's control API checks (and the bar relay sends)."""
        return self.sim_admin_token or self.admin_token

    @property
    def venue_url(self) -> str:
        return f"http://127.0.0.1:{self.port('exchange_sim')}"


def specs(cfg: PaperConfig) -> list[ProcessSpec]:
    """One process per service (ingest last), environments rendered by ``to_env`` as in
    :func:`tm_app.mesh._specs`: shared fields, then the service's own, which win."""
    from tm_app.mesh import SETTINGS

    venue = cfg.venue_url
    shared: dict[str, Any] = {"redis_url": cfg.redis_url, "database_url": cfg.database_url,
                              "namespace": cfg.namespace, "data_dir": cfg.paper_dir,
                              "symbols": cfg.symbols, "mode": "live"}
    per: dict[str, dict[str, Any]] = {
        "exchange_sim": {"sim_feed": "live", "sim_symbols": list(cfg.symbols),
                         "sim_initial_balance": cfg.initial_equity,
                         "sim_slippage_bps": cfg.slippage_bps, "sim_api_key": SIM_KEY,
                         "sim_api_secret": SIM_SECRET, "sim_rate_limit_per_s": 100000},
        # the one venue the executor knows: the local paper venue (REST and private WS)
        "executor": {"bybit_rest_url": venue,
                     "bybit_private_ws_url": venue.replace("http", "ws", 1) + "/v5/private",
                     "bybit_api_key": SIM_KEY, "bybit_api_secret": SIM_SECRET},
        "risk": {"venue_rest_url": venue},          # its lot filters: the venue's
        "portfolio": {"initial_equity": cfg.initial_equity},
        "ingest": {"bybit_rest_url": cfg.market_rest_url, "bybit_ws_url": cfg.market_ws_url,
                   "deribit_url": cfg.deribit_url, "backfill_bars": cfg.backfill_bars,
                   "backfill_start_ms": cfg.backfill_start_ms, "mark_poll_s": cfg.mark_poll_s},
    }
    # each token only to the service that checks it: risk its own, the paper venue its own
    # (ingest reads live market data here and drives no simulator clock: it gets none)
    for n, token in (("risk", cfg.admin_token), ("exchange_sim", cfg.venue_token)):
        if token:
            per.setdefault(n, {})["admin_token"] = token
    shared_env = to_env(CommonSettings.from_values(**shared))
    keys = local_keys(cfg.paper_dir)       # the run's signing keys (tm_common.bus.signing)
    out = []
    for n in (*PIPELINE, "ingest"):
        own = to_env(SETTINGS[n].from_values(**shared, service_name=n, http_port=cfg.port(n),
                                             **per.get(n, {})))
        env = {**shared_env, **service_signing_env(n, keys),
               **{k: v for k, v in own.items() if k not in shared_env}}
        out.append(ProcessSpec(name=n, argv=[sys.executable, "-m", BY_NAME[n].module],
                               env=env, port=cfg.port(n)))
    if cfg.shadow is not None:          # beside production, before ingest (started last)
        out.insert(-1, shadow_spec(cfg.shadow, shared={**shared, "mode": "paper"},
                                   port_offset=cfg.port_offset, initial_equity=cfg.initial_equity,
                                   slippage_bps=cfg.slippage_bps))
    return out


class PaperRun:
    """Start the mesh, relay bars to the venue, supervise until stopped, stop everything."""

    def __init__(self, cfg: PaperConfig, *, state_path: Path | None,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.state_path, self.log = cfg, state_path, log
        all_specs = specs(cfg)
        logs = cfg.paper_dir / "logs"
        base = basic_env()          # no secret of the caller's shell reaches a service
        self.sup = Supervisor(all_specs[:-1], log_dir=logs, grace_s=15, base_env=base)
        self.ingest = Supervisor(all_specs[-1:], log_dir=logs, grace_s=15, base_env=base)
        self.relay = BarRelay(cfg.redis_url, cfg.namespace, cfg.venue_url, cfg.venue_token)
        self.stop_requested = threading.Event()
        self.running = False
        self.stopping = False           # a second Ctrl-C must not interrupt the clean stop

    def write_state(self) -> None:
        """One state document for both supervisors (what ``tm status``/``tm down`` read)."""
        if self.state_path is None:
            return
        doc = self.sup.state()
        doc["processes"].update(self.ingest.state()["processes"])
        doc["paper"] = {"namespace": self.cfg.namespace, "venue": self.cfg.venue_url}
        doc["port_offset"] = self.cfg.port_offset
        doc["admin_token_file"] = (str(self.cfg.admin_token_file)
                                   if self.cfg.admin_token_file else None)
        tmp = self.state_path.with_name(self.state_path.name + ".paper.tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(self.state_path)

    def run(self, *, duration_s: float | None = None, ready_timeout_s: float = 300.0,
            status_every_s: float = 60.0) -> float:
        """Run until :attr:`stop_requested` or ``duration_s`` after the mesh is ready; returns
        the seconds it traded."""
        from tm_app.mesh import _wait_ready

        check_ports({n: p.spec.port for n, p in (*self.sup.procs.items(),
                                                 *self.ingest.procs.items())}, hint=OFFSET_HINT)
        t0 = time.monotonic()
        try:
            self.sup.start()
            self.write_state()
            _wait_ready(self.sup, list(self.sup.procs), ready_timeout_s, self.log)
            self.relay.start()
            self.ingest.start()
            self.write_state()
            self.running = True
            t1 = time.monotonic()
            self.log(f"services ready in {t1 - t0:.1f}s; paper trading on live prices "
                     f"(namespace {self.cfg.namespace}; Ctrl-C stops)")
            last_status = t1
            while not self.stop_requested.wait(0.5):
                if self.sup.poll() | self.ingest.poll():
                    self.write_state()
                if not self.relay.alive:
                    self.log("relay stopped; restarting it")
                    self.relay = BarRelay(self.cfg.redis_url, self.cfg.namespace,
                                          self.cfg.venue_url, self.cfg.venue_token)
                    self.relay.start()
                if duration_s is not None and time.monotonic() - t1 >= duration_s:
                    break
                if time.monotonic() - last_status >= status_every_s:
                    last_status = time.monotonic()
                    self.log(self.status_line())
            return time.monotonic() - t1
        finally:
            self.stopping, self.running = True, False
            self.ingest.stop()
            self.relay.stop()
            self.sup.stop()
            if self.state_path is not None:
                self.state_path.unlink(missing_ok=True)

    def status_line(self) -> str:
        try:
            v = httpx.get(f"{self.cfg.venue_url}/status", timeout=3, trust_env=False).json()
        except (httpx.HTTPError, ValueError):
            v = {}
        marks = " ".join(f"{s} {p}" for s, p in v.get("marks", {}).items()) or "none yet"
        return (f"  bars relayed {self.relay.counts.bars}; venue marks: {marks}; orders "
                f"{v.get('orders', '?')}, executions {v.get('executions', '?')}, wallet "
                f"{v.get('wallet_balance', '?')} USDT")


def run_doc(cfg: PaperConfig, started: datetime) -> dict:
    """What identifies a run for its report (no URL with credentials: Redis is resolved again)."""
    return {"namespace": cfg.namespace, "started_at": started.isoformat(),
            "symbols": list(cfg.symbols), "initial_equity": str(cfg.initial_equity),
            "venue": cfg.venue_url, "market_rest_url": cfg.market_rest_url,
            "market_ws_url": cfg.market_ws_url, "shadow": cfg.shadow,
            "mark_poll_s": cfg.mark_poll_s}


def read_last_run(paper_dir: Path) -> dict | None:
    try:
        doc = json.loads((paper_dir / LAST_RUN).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "namespace" in doc else None


def write_paper_report(redis_url: str, run: dict, out_dir: Path, extra_meta: dict,
                       database_url: str = "") -> dict:
    """The report of a paper run from its streams (at any time, during or after the run);
    ``database_url``: the run's registry, for the report's models and their gates."""
    from tm_app.backtest import RunConfig
    from tm_app.demo import report
    from tm_app.mesh import _read
    from tm_app.report.html import INTRABAR_KEY, intrabar_marks

    record = asyncio.run(_read(redis_url, run["namespace"]))
    opens = [b.open_time_ms for b in record.bars] or [0]
    fmt = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    window = f"{fmt(min(opens))} → {fmt(max(opens))} UTC (bar open times)" if record.bars \
        else "no bars yet"
    meta = {"mode": "paper (live prices, local paper venue)", "window": window,
            "namespace": run["namespace"], "market_data": run.get("market_ws_url"),
            "venue": run.get("venue"), "started_at": run.get("started_at"),
            INTRABAR_KEY: intrabar_marks("paper", run.get("mark_poll_s")), **extra_meta}
    cfg = RunConfig(start_ms=min(opens), end_ms=max(opens), database_url=database_url,
                    symbols=tuple(run.get("symbols", ())),
                    initial_equity=Decimal(run.get("initial_equity", "100000")))
    challenger = None
    if run.get("shadow"):
        from tm_app.mesh import ShadowRun
        ns = book_namespace(run["namespace"], run["shadow"])
        challenger = ShadowRun(run["shadow"], ns, asyncio.run(_read(redis_url, ns)), {})
    return report(record, cfg, out_dir, meta, shadow=challenger)


# ---- the command ------------------------------------------------------------------------------
def paper(symbols: Annotated[str | None, typer.Option(help="Comma-separated.")] = None,
          equity: Annotated[str, typer.Option(help="Initial equity of the paper account, USDT.")] = "100000",
          duration: Annotated[float | None, typer.Option(
              help="Stop after this many seconds of trading (default: until Ctrl-C/SIGTERM).")] = None,
          train: Annotated[bool, typer.Option("--train/--no-train", help="Train the models on "
                                              "the shipped history if the registry has none.")] = True,
          fast_train: Annotated[bool, typer.Option("--fast-train/--full-train")] = False,
          port_offset: Annotated[int, typer.Option(help="Added to every service port.")] = 0,
          report_only: Annotated[bool, typer.Option(
              "--report-only", help="Write the report of the last (or running) paper run and "
              "exit.")] = False,
          status_every: Annotated[float, typer.Option(help="Seconds between status lines.")] = 60.0,
          shadow: Annotated[str, typer.Option(
              help="Signal candidate to paper-trade in a shadow book beside production: a "
                   "version, 'newest-refused' or 'none'. Its days count as forward evidence "
                   "for `tm models promote`.")] = "newest-refused",
          out: Annotated[Path | None, typer.Option(help="Report folder (default "
                                                   "reports/paper-<time>).")] = None) -> None:
    """Paper trading on live prices: the whole mesh on Bybit's public data, orders on a local
    paper venue (the exchange simulator's live feed), until Ctrl-C; then a report."""
    from tm_common.instruments import DEFAULT_INSTRUMENTS
    from tm_ingest.config import IngestSettings

    from tm_app.cli import (
        _ensure_models,
        _equity_opt,
        _out,
        _prepare,
        _settings,
        _symbols_opt,
        console,
        fail,
    )
    from tm_app.demo import shadow_candidate
    from tm_app.stack import stack

    settings = _settings()
    paper_dir = Path(settings.data_dir).expanduser().resolve() / "paper"
    paper_dir.mkdir(parents=True, exist_ok=True)
    paper_settings = settings.model_copy(update={"data_dir": paper_dir})
    if report_only:
        last = read_last_run(paper_dir)
        if last is None:
            fail(f"no paper run recorded under {paper_dir} (start one with `tm paper`)", 2)
        redis_url, db_url = _prepare(paper_settings)
        write_paper_report(redis_url, last, _out(out, "paper"), {"report_only": True}, db_url)
        return
    syms = _symbols_opt(symbols)
    if unknown := [s for s in syms if s not in DEFAULT_INSTRUMENTS]:
        fail(f"--symbols: no instrument specification for {', '.join(unknown)} "
             f"(the paper venue trades {', '.join(DEFAULT_INSTRUMENTS)})", 2)
    eq = _equity_opt(equity)
    if duration is not None and duration <= 0:
        fail(f"--duration must be positive, got {duration}", 2)
    try:
        ingest = IngestSettings()
    except ValueError as e:
        fail(f"bad ingest configuration: {str(e).splitlines()[0]}", 2)
    lock = stack.SupervisorLock(settings)
    if not lock.acquire():
        fail(f"a supervisor is already running for {stack.data_dir(settings)} "
             f"(pid {lock.holder_pid()}); run `tm down` first")
    try:
        from tm_app.stack.admin_token import ensure_admin_token, read_token_file
        from tm_app.stack.ports import PortsInUse

        try:   # before anything starts (the check in PaperRun.run adds the shadow book's)
            check_ports({n: BY_NAME[n].port + port_offset for n in (*PIPELINE, "ingest")},
                        hint=OFFSET_HINT)
            if settings.admin_token is not None:
                token_file, token = None, settings.admin_token.get_secret_value()
                sim_token = None
            else:                           # the stack's file: a token per service
                token_file = ensure_admin_token(settings)
                token = read_token_file(token_file)
                sim_token = read_token_file(token_file, "exchange_sim")
        except (PortsInUse, stack.StackError) as e:
            fail(str(e))
        redis_url, db_url = _prepare(paper_settings)
        if train:
            _ensure_models(db_url, fast_train)
        try:
            challenger = shadow_candidate(db_url, shadow)
        except LookupError as e:
            fail(f"--shadow: {e}", 2)
        started = datetime.now(UTC)
        cfg = PaperConfig(
            redis_url=redis_url, database_url=db_url, paper_dir=paper_dir,
            namespace=f"tmpaper:{started:%Y%m%d-%H%M%S}:", market_rest_url=ingest.bybit_rest_url,
            market_ws_url=ingest.bybit_ws_url, deribit_url=ingest.deribit_url, symbols=syms,
            initial_equity=eq, port_offset=port_offset, backfill_bars=ingest.backfill_bars,
            backfill_start_ms=ingest.backfill_start_ms, mark_poll_s=ingest.mark_poll_s,
            admin_token=token, admin_token_file=token_file, sim_admin_token=sim_token,
            shadow=challenger)
        (paper_dir / LAST_RUN).write_text(json.dumps(run_doc(cfg, started), indent=2))
        console.print(f"paper trading: market data {cfg.market_ws_url} + {cfg.market_rest_url}; "
                      f"orders to the local paper venue {cfg.venue_url} only; logs in "
                      f"{paper_dir / 'logs'}")
        run = PaperRun(cfg, state_path=stack.state_path(settings),
                       log=lambda m: console.print(m))
        secs = _supervise(run, duration, status_every)
    except typer.Exit:                      # fail() above (click's Exit is a RuntimeError)
        raise
    except RuntimeError as e:               # the mesh did not come up: one line, logs named
        fail(f"{e}; see {paper_dir / 'logs'}")
    finally:
        lock.release()
    console.print(f"stopped after {secs:.0f}s of paper trading; writing the report")
    write_paper_report(redis_url, run_doc(cfg, started), _out(out, "paper"),
                       {"trading_seconds": round(secs, 1),
                        "relay": json.dumps(asdict(run.relay.counts))}, db_url)


def _supervise(run: PaperRun, duration: float | None, status_every: float) -> float:
    """:meth:`PaperRun.run` with SIGINT/SIGTERM/SIGHUP as a clean stop (``tm down`` sends
    SIGTERM, a closed terminal SIGHUP); before the mesh is trading, a signal interrupts the
    start-up (which then stops it all)."""
    def on_signal(signum: int, _frame: Any) -> None:
        signals.received.append(signum)    # at exit: the embedded Redis stops too, if unused
        run.stop_requested.set()
        if not run.running and not run.stopping:
            raise KeyboardInterrupt
    previous = {s: signal.signal(s, on_signal)
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return run.run(duration_s=duration, status_every_s=status_every)
    except KeyboardInterrupt:
        return 0.0
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
