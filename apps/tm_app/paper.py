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

The command and its signal handling are here; the run's configuration, the services' processes
and their supervision are in :mod:`tm_app.paper_mesh`, the run's record and report in
:mod:`tm_app.paper_report`.
"""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from tm_common.files import replace_file

from tm_app.paper_instruments import INSTRUMENTS_FILE, write_answer
from tm_app.paper_mesh import PIPELINE, PaperConfig, PaperRun
from tm_app.paper_report import LAST_RUN, read_last_run, run_doc, write_paper_report
from tm_app.paper_resume import NothingToResume, PriorRun, check_streams, prior_run
from tm_app.stack import signals
from tm_app.stack.ports import OFFSET_HINT, check_ports
from tm_app.stack.services import BY_NAME


# ---- the command ------------------------------------------------------------------------------
def paper(symbols: Annotated[str | None, typer.Option(help="Comma-separated.")] = None,
          equity: Annotated[str | None, typer.Option(
              help="Initial equity of the paper account, USDT (default 100000).")] = None,
          duration: Annotated[float | None, typer.Option(
              help="Stop after this many seconds of trading (default: until Ctrl-C/SIGTERM).")] = None,
          train: Annotated[bool, typer.Option("--train/--no-train", help="Train the models on "
                                              "the shipped history if the registry has none.")] = True,
          fast_train: Annotated[bool, typer.Option("--fast-train/--full-train")] = False,
          port_offset: Annotated[int, typer.Option(help="Added to every service port.")] = 0,
          report_only: Annotated[bool, typer.Option(
              "--report-only", help="Write the report of the last (or running) paper run and "
              "exit.")] = False,
          resume: Annotated[bool, typer.Option(
              "--resume", help="Continue the last paper run (its streams, symbols, equity, "
              "shadow candidate and paper account) instead of starting a new one.")] = False,
          status_every: Annotated[float, typer.Option(help="Seconds between status lines.")] = 60.0,
          shadow: Annotated[str, typer.Option(
              help="Signal candidate to paper-trade in a shadow book beside production: a "
                   "version, 'awaiting-evidence', 'newest-refused', 'auto' (the first, else "
                   "the second) or 'none'. Its days count as forward evidence: `tm train` "
                   "promotes a candidate whose gates passed once it has enough.")] = "auto",
          out: Annotated[Path | None, typer.Option(help="Report folder (default "
                                                   "reports/paper-<time>).")] = None) -> None:
    """Paper trading on live prices: the whole mesh on Bybit's public data, orders on a local
    paper venue (the exchange simulator's live feed), until Ctrl-C; then a report."""
    from tm_executor.config import ExecutorSettings
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
    prior: PriorRun | None = None
    if resume:
        if symbols is not None or equity is not None:
            fail("--resume continues the last run with its own symbols and equity; drop "
                 "--symbols and --equity", 2)
        try:
            prior = prior_run(paper_dir)
        except NothingToResume as e:
            fail(f"--resume: {e}", 2)
        syms, eq = prior.symbols, prior.equity
    else:
        syms, eq = _symbols_opt(symbols), _equity_opt(equity or "100000")
    if duration is not None and duration <= 0:
        fail(f"--duration must be positive, got {duration}", 2)
    try:
        ingest = IngestSettings()
    except ValueError as e:
        fail(f"bad ingest configuration: {str(e).splitlines()[0]}", 2)
    try:          # the paper executor's venue stop (TM_EXECUTOR_VENUE_STOP_LOSS; live default)
        venue_stop = ExecutorSettings(mode="live").stop_loss_ratio
    except ValueError as e:
        fail(f"bad executor configuration: {str(e).splitlines()[0]}", 2)
    listed = _market_instruments(ingest.bybit_rest_url, syms)
    lock = stack.SupervisorLock(settings)
    if not lock.acquire():
        fail(f"a supervisor is already running for {stack.data_dir(settings)} "
             f"(pid {lock.holder_pid()}); run `tm down` first")
    try:
        instruments_file = None             # written once the slot is ours: a running run's
        if listed is not None:              # venue may read its file again on a restart
            instruments_file = paper_dir / INSTRUMENTS_FILE
            write_answer(instruments_file, listed)
        else:                               # an earlier run's: the relay writes this run's
            (paper_dir / INSTRUMENTS_FILE).unlink(missing_ok=True)
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
        if prior is not None:
            try:
                check_streams(redis_url, prior)
            except NothingToResume as e:
                fail(f"--resume: {e}", 2)
        if train:
            _ensure_models(db_url, fast_train)
        try:
            challenger = prior.shadow if prior else shadow_candidate(db_url, shadow)
        except LookupError as e:
            fail(f"--shadow: {e}", 2)
        now = datetime.now(UTC)
        started = prior.started if prior else now
        cfg = PaperConfig(
            redis_url=redis_url, database_url=db_url, paper_dir=paper_dir,
            namespace=f"tmpaper:{started:%Y%m%d-%H%M%S}:", market_rest_url=ingest.bybit_rest_url,
            market_ws_url=ingest.bybit_ws_url, deribit_url=ingest.deribit_url, symbols=syms,
            initial_equity=eq, port_offset=port_offset, backfill_bars=ingest.backfill_bars,
            backfill_start_ms=ingest.backfill_start_ms, mark_poll_s=ingest.mark_poll_s,
            venue_stop_loss=venue_stop, admin_token=token, admin_token_file=token_file, sim_admin_token=sim_token,
            shadow=challenger, instruments_file=instruments_file,
            venue_journal=prior.venue_journal if prior
            else paper_dir / f"venue-{started:%Y%m%d-%H%M%S}.jsonl")
        doc = run_doc(cfg, started)
        if prior is not None:
            doc["resumed_at"] = [*prior.resumed_at, now.isoformat()]
            console.print(f"resuming the paper run {cfg.namespace} (started "
                          f"{started:%Y-%m-%d %H:%M} UTC): its streams, its paper account "
                          f"({prior.venue_journal.name}) and {', '.join(syms)}")
        replace_file(paper_dir / LAST_RUN, json.dumps(doc, indent=2), sync=True)
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


def _market_instruments(rest_url: str, syms: tuple[str, ...]) -> dict[str, Any] | None:
    """The market's instruments-info answer for ``syms``, for the paper venue
    (:mod:`tm_app.paper_instruments`); None, the shipped filters, when the market does not
    answer and every symbol is shipped (the relay asks again every hour)."""
    import httpx
    from tm_common.instruments import DEFAULT_INSTRUMENTS

    from tm_app.cli import console, fail
    from tm_app.paper_instruments import MarketInstrumentsError, answer, fetch_specs

    try:
        specs = asyncio.run(fetch_specs(rest_url, syms))
    except MarketInstrumentsError as e:
        fail(f"--symbols: {e}", 2)
    except httpx.HTTPError as e:
        why = f"the market's instruments-info ({rest_url}) did not answer ({type(e).__name__})"
        if unknown := [s for s in syms if s not in DEFAULT_INSTRUMENTS]:
            fail(f"--symbols: {why}, and no filters are shipped for {', '.join(unknown)}", 2)
        console.print(f"warning: {why}; the paper venue starts with the shipped filters")
        return None
    return answer(specs)


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
