"""The record and report of a ``tm paper`` run (:mod:`tm_app.paper`): what identifies a run
(:func:`run_doc`, kept in ``<paper dir>/last-run.json``), reading it back, and the report written
from the run's streams (:func:`write_paper_report`), at its end or by ``tm paper --report-only``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from tm_common.timefmt import utc_minute

from tm_app.paper_mesh import PaperConfig
from tm_app.shadow.spec import book_namespace

LAST_RUN = "last-run.json"


def run_doc(cfg: PaperConfig, started: datetime) -> dict:
    """What identifies a run for its report (no URL with credentials: Redis is resolved again)."""
    return {"namespace": cfg.namespace, "started_at": started.isoformat(),
            "symbols": list(cfg.symbols), "initial_equity": str(cfg.initial_equity),
            "venue": cfg.venue_url, "market_rest_url": cfg.market_rest_url,
            "market_ws_url": cfg.market_ws_url, "shadow": cfg.shadow,
            "mark_poll_s": cfg.mark_poll_s, "venue_stop_loss": cfg.venue_stop_loss,
            "venue_journal": None if cfg.venue_journal is None else str(cfg.venue_journal)}


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
    from tm_app.report.html import INTRABAR_KEY, VENUE_STOP_KEY, intrabar_marks, venue_stop

    record = asyncio.run(_read(redis_url, run["namespace"]))
    opens = [b.open_time_ms for b in record.bars] or [0]
    window = (f"{utc_minute(min(opens))} → {utc_minute(max(opens))} UTC (bar open times)"
              if record.bars else "no bars yet")
    meta = {"mode": "paper (live prices, local paper venue)", "window": window,
            "namespace": run["namespace"], "market_data": run.get("market_ws_url"),
            "venue": run.get("venue"), "started_at": run.get("started_at"),
            INTRABAR_KEY: intrabar_marks("paper", run.get("mark_poll_s")),
            VENUE_STOP_KEY: venue_stop("paper", run.get("venue_stop_loss")), **extra_meta}
    cfg = RunConfig(start_ms=min(opens), end_ms=max(opens), database_url=database_url,
                    symbols=tuple(run.get("symbols", ())),
                    initial_equity=Decimal(run.get("initial_equity", "100000")))
    challenger = None
    if run.get("shadow"):
        from tm_app.mesh import ShadowRun
        ns = book_namespace(run["namespace"], run["shadow"])
        challenger = ShadowRun(run["shadow"], ns, asyncio.run(_read(redis_url, ns)), {})
    return report(record, cfg, out_dir, meta, shadow=challenger)
