"""The main job, end to end: environment → models (trained if the registry has none) → mesh
replay of real history against the simulator → summary table and report → clean shutdown."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tm_common.timefmt import utc_minute

from tm_app.backtest import RunConfig, run_backtest
from tm_app.mesh import ShadowRun
from tm_app.record import RunRecord
from tm_app.report.html import write_report
from tm_app.warmup import Warmup, trade_start_ms, trim

console = Console(width=None if sys.stdout.isatty() else 160)  # a log keeps the whole table
DAY_MS = 86_400_000
DEFAULT_START = "2025-01-01"          # the trainer's default cut-off: the replay is out-of-sample
DEFAULT_END = "2025-06-30"
#: The demo's models: trained on the shipped files up to this fixed cut-off, so that the replay
#: from DEFAULT_START stays out of sample whatever the database holds.
DEMO_TRAIN_ARGS = ("--source", "files", "--train-end", DEFAULT_START)


def parse_day_ms(text: str) -> int:
    """``YYYY-MM-DD`` (UTC) or epoch ms → ms; ValueError naming the input otherwise."""
    if text.isdigit():
        return int(text)
    try:
        d = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as e:
        raise ValueError(f"not a date (YYYY-MM-DD) or epoch ms: {text!r}") from e
    return int(d.timestamp() * 1000)


async def has_models(database_url: str, kind: str = "signal") -> bool:
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry

    engine = make_engine(database_url)
    try:
        return bool(await ModelRegistry(engine).list(kind))   # trained before (promoted or not)
    finally:
        await engine.dispose()


async def model_instruments(database_url: str) -> tuple[str, tuple[str, ...]] | None:
    """``(version, instruments it was trained on)`` of the signal model a run uses: the
    production one, else the newest registered; ``None`` when the registry has none."""
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry

    engine = make_engine(database_url)
    try:
        reg = ModelRegistry(engine)
        rec = await reg.production("signal") or next(iter(await reg.list("signal")), None)
        if rec is None:
            return None
        config = (rec.params or {}).get("config") or {}
        return rec.version, tuple(config.get("instruments") or ())
    finally:
        await engine.dispose()


#: The rows of :func:`summary_table`: (label, stats key, format).
SUMMARY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("return", "total_return", "pct"), ("Sharpe", "sharpe", "num"),
    ("Sortino", "sortino", "num"), ("Calmar", "calmar", "num"),
    ("max DD", "max_drawdown", "pct"), ("win rate", "win_rate", "pct"),
    ("turnover", "turnover", "num"), ("fees", "fees", "num"), ("funding", "funding", "num"),
    ("buy & hold", "buy_and_hold", "pct"))


def summary_table(summary: dict, title: str) -> Table:
    """One metric per row, one column per scope (total, then each instrument): it fits an
    80-column terminal whole (every cell folds rather than being cut to ``…``)."""
    st = summary["stats"]

    def pct(x):
        return "–" if x is None or x != x else f"{x * 100:.2f}%"

    def num(x):
        return "–" if x is None or x != x else f"{x:.2f}"
    fmt = {"pct": pct, "num": num}
    scopes = [("total", st["total"])] + list(st["per_instrument"].items())
    t = Table(title=title)
    t.add_column("metric", overflow="fold")
    for name, _ in scopes:
        t.add_column(name, justify="right", overflow="fold")
    for label, key, kind in SUMMARY_METRICS:
        t.add_row(label, *(fmt[kind](v.get(key)) for _, v in scopes))
    return t


def shadow_candidate(database_url: str, choice: str) -> str | None:
    """``--shadow``: ``none`` → None; ``auto``, ``awaiting-evidence`` or ``newest-refused``
    → that version (:func:`tm_app.shadow.pinned.resolve_candidate`), or None when the registry
    has no such candidate (said on the console); a version → itself, if it is a signal model.
    Raises ``LookupError`` naming the problem."""
    from tm_app.shadow.config import CANDIDATE_CHOICES
    from tm_app.shadow.pinned import resolve_candidate

    if choice in ("none", ""):
        return None

    async def go() -> str:
        from tm_common.db import make_engine
        from tm_common.models.registry import ModelRegistry

        engine = make_engine(database_url)
        try:
            return (await resolve_candidate(ModelRegistry(engine), choice)).version
        finally:
            await engine.dispose()
    try:
        return asyncio.run(go())
    except LookupError as e:
        if choice not in CANDIDATE_CHOICES:
            raise
        console.print(f"shadow book: none ({e})")
        return None


def report(record: RunRecord, cfg: RunConfig, out_dir: Path, meta: dict,
           shadow: ShadowRun | None = None, *, explain: bool = True) -> dict:
    """Write the report; with ``explain``, a banner (what traded and why, next steps) ends the
    console output and heads the report (``meta["banner"]``, ``meta["models"]``). The events of
    a warm-up before ``cfg``'s trade start (:mod:`tm_app.warmup`) are left out."""
    from tm_app.explain import banner, models_in_use
    from tm_app.report.html import build_summary

    start = trade_start_ms(cfg)
    if start > cfg.start_ms:
        record = trim(record, start)
        if shadow is not None:
            shadow = ShadowRun(shadow.candidate, shadow.namespace, trim(shadow.record, start),
                               shadow.status)

    if explain:
        models = models_in_use(cfg.database_url) if cfg.database_url else None
        pre = build_summary(record, initial_equity=float(cfg.initial_equity), meta={},
                            challenger=shadow)
        meta = {**meta, "banner": banner(pre, models, replay="paper" not in meta.get("mode", "")),
                **({"models": models.as_meta()} if models else {})}
    summary = write_report(record, out_dir, initial_equity=float(cfg.initial_equity), meta=meta,
                           challenger=shadow)
    console.print(summary_table(summary, meta.get("mode", "run")))
    if shadow is not None:
        ch = summary["challenger"]
        console.print(summary_table(ch, f"challenger in shadow: signal {shadow.candidate} "
                                        "(paper, not production)"))
        ic = ch["stats"]["signal_ic"].get("all")          # null in report.json when undefined
        console.print(f"challenger: {ch['counts']['orders']} orders, tiers {ch['tiers']}, "
                      f"IC {'–' if ic is None else f'{ic:.4f}'}")
    from tm_app.report.sections import PLAUSIBLE_LATENCY_MS

    lat = summary["latency_ms"].get("bar→order acknowledged", {})
    if lat.get("n") and (lat.get("p50") or 0) <= PLAUSIBLE_LATENCY_MS:
        console.print(f"bar → order acknowledged: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms "
                      f"({lat['n']} orders)")
    elif lat.get("n"):
        console.print("bar → order latency: not measured (in-process backtest bars carry no "
                      "publication time)")
    console.print(f"tiers {summary['tiers']}  regimes {summary['regimes']}  "
                  f"breaker events {len(summary['breaker_events'])}")
    if meta.get("banner"):
        from rich.panel import Panel
        console.print(Panel("\n".join(meta["banner"]), title="what traded, and why",
                            expand=False))
    console.print(f"report: {out_dir / 'report.html'} (numbers: {out_dir / 'report.json'})")
    return summary


def backtest(cfg: RunConfig, out_dir: Path, warm: Warmup | None = None) -> dict:
    """Replay ``cfg`` in process (its warm-up included: ``bars_per_s`` counts its bars too)."""
    t0 = time.monotonic()
    rec = asyncio.run(run_backtest(cfg))
    secs = time.monotonic() - t0
    bars = len(rec.bars)
    meta = {"mode": "backtest (in-process)", "window": _window(cfg), "seconds": round(secs, 2),
            "bars_per_s": round(bars / secs, 1) if secs else None,
            **({"warm-up": warm.describe()} if warm is not None else {})}
    return report(rec, cfg, out_dir, meta)


def _window(cfg: RunConfig) -> str:
    return f"{utc_minute(trade_start_ms(cfg))} → {utc_minute(cfg.end_ms)} UTC"


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str))
