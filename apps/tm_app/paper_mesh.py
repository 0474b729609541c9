"""The mesh of a ``tm paper`` run (:mod:`tm_app.paper`): :class:`PaperConfig`, the services'
processes and environments (:func:`specs`: the executor's only venue is the local paper venue),
and :class:`PaperRun`, which starts them, relays bars to the venue and supervises until stopped.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from tm_common.bus.signing import local_keys, service_signing_env
from tm_common.files import replace_file
from tm_common.settings import CommonSettings, to_env
from tm_executor.config import DEFAULT_VENUE_STOP_LOSS

from tm_app.paper_instruments import INSTRUMENTS_FILE
from tm_app.paper_relay import BarRelay
from tm_app.shadow.spec import shadow_spec
from tm_app.stack.env_scope import basic_env
from tm_app.stack.ports import OFFSET_HINT, check_ports
from tm_app.stack.services import BY_NAME
from tm_app.stack.supervisor import ProcessSpec, Supervisor

PIPELINE = ("exchange_sim", "regime", "signal", "sizer", "risk", "executor", "portfolio")
SIM_KEY, SIM_SECRET = "paper-key", "paper-secret-local-venue-only"


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
    venue_stop_loss: float = DEFAULT_VENUE_STOP_LOSS   # the executor's stop on the paper venue
    #                                        (a position's loss, part of equity; 0 = none)
    admin_token: str | None = None         # risk's (tm breaker / tm kill)
    admin_token_file: Path | None = None   # where admin_token came from, if the stack made it
    sim_admin_token: str | None = None     # the paper venue's control API (the bar relay's);
    #                                        None: admin_token (a shared TM_ADMIN_TOKEN)
    shadow: str | None = None              # a signal candidate traded in a shadow book beside
    #                                        production (None: none)
    instruments_file: Path | None = None   # the market's instruments-info for the paper venue
    #                                        (None: the shipped filters)
    instruments_every_s: float = 3600.0    # how often the relay reads the market's again
    venue_journal: Path | None = None      # the paper venue's journal: a restarted venue is
    #                                        the same account (None: in memory only)

    def port(self, name: str) -> int:
        return BY_NAME[name].port + self.port_offset

    @property
    def venue_token(self) -> str | None:
        """The token the paper venue's control API checks (and the bar relay sends)."""
        return self.sim_admin_token or self.admin_token

    @property
    def followed_instruments(self) -> Path:
        """The run's instruments file as the relay keeps it (it may not be there yet: the
        market did not answer at start); the shadow book follows it."""
        return self.paper_dir / INSTRUMENTS_FILE

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
                         "sim_api_secret": SIM_SECRET, "sim_rate_limit_per_s": 100000,
                         "sim_instruments_file": cfg.instruments_file,
                         "sim_journal_file": cfg.venue_journal},
        # the one venue the executor knows: the local paper venue (REST and private WS)
        "executor": {"bybit_rest_url": venue,
                     "bybit_private_ws_url": venue.replace("http", "ws", 1) + "/v5/private",
                     "bybit_api_key": SIM_KEY, "bybit_api_secret": SIM_SECRET,
                     "venue_stop_loss": cfg.venue_stop_loss},
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
                                   slippage_bps=cfg.slippage_bps,
                                   instruments_file=cfg.followed_instruments))
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
        self.relay = self._relay()
        self.stop_requested = threading.Event()
        self.running = False
        self.stopping = False           # a second Ctrl-C must not interrupt the clean stop

    def _relay(self) -> BarRelay:
        c = self.cfg
        return BarRelay(c.redis_url, c.namespace, c.venue_url, c.venue_token,
                        market_url=c.market_rest_url, symbols=c.symbols,
                        instruments_every_s=c.instruments_every_s,
                        instruments_file=c.followed_instruments)

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
        replace_file(self.state_path, json.dumps(doc, indent=2))

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
                    self.relay = self._relay()
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
