"""Warm-up bars before a replay's ``--start`` (freqtrade's "startup candles").

A replay of a short window used to start every service cold: risk's VaR needs
``var_min_obs`` (60) aligned 4h returns before it lets a position grow, so a window shorter than
about ten days never traded. With a warm-up the replay starts ``bars`` bar times earlier and
the services see those bars as they would live:

- regime filters them (its HMM state and GARCH variance are warm at ``--start``);
- risk keeps their closes (the HRP and VaR window is full at ``--start``);
- portfolio values the (flat) book at each of them;
- signal does not run its model on them (``TM_SIGNAL_TRADE_START_MS``): a bar that opens before
  the trade start gets no signal, so no target, no order. Its features are warmed from the same
  history by the signal service itself at its first trading bar, as without a warm-up; its live
  IC starts empty (predictions on warm-up bars could be in the model's training sample).

The report then drops every event of a bar before ``--start`` (:func:`trim`): equity, returns,
bars and regimes are the window's only; it says how many warm-up bars fed the services. The
same ``RunConfig`` (an earlier ``start_ms`` and one ``extra_env`` entry) drives the in-process
backtest and the mesh replay, so the two stay equal (the parity tests replay with a warm-up).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tm_common.history import BAR_INTERVAL_MS, HistoryFileError, load_bars
from tm_common.timefmt import utc_minute

from tm_app.backtest import RunConfig
from tm_app.record import RunRecord

#: The signal service's setting: bars that open before it get no signal (warm-up only).
TRADE_START_ENV = "TM_SIGNAL_TRADE_START_MS"


def default_warmup_bars(extra_env: Mapping[str, str] | None = None) -> int:
    """Bar times of warm-up the services need (4h bars): the longest of the feature lookback
    (``tm_quant.features.WARMUP_BARS``, 200), risk's HRP/VaR window plus one close
    (``TM_RISK_WINDOW_BARS`` + 1, 181) and the VaR/HRP minimum observations plus one; risk's
    values as ``extra_env`` (the run's ``TM_`` overrides) or the environment set them."""
    from tm_quant.features import WARMUP_BARS
    from tm_risk.config import RiskSettings

    from tm_app.backtest import settings_from

    risk = settings_from(RiskSettings, extra_env or {})
    return max(WARMUP_BARS, risk.window_bars + 1, risk.var_min_obs + 1, risk.hrp_min_obs + 1)


@dataclass(frozen=True)
class Warmup:
    """What a run warms up with. ``requested``: bar times asked for; ``bars``: bar times of
    history every symbol has before ``trade_start_ms`` (≤ ``requested``); ``start_ms``: the
    first warm-up bar's open time (``trade_start_ms`` when ``bars`` is 0)."""

    requested: int
    bars: int
    start_ms: int
    trade_start_ms: int

    @property
    def short(self) -> bool:
        """True when the history before ``--start`` had fewer bar times than asked for."""
        return self.bars < self.requested

    def describe(self) -> str:
        """One line for the console and the report."""
        if self.requested == 0:
            return "off (--warmup-bars 0): the services start cold at --start"
        last = self.trade_start_ms - BAR_INTERVAL_MS
        span = f"{utc_minute(self.start_ms)} → {utc_minute(last)} UTC"
        if self.bars == 0:
            return (f"none: no history before --start (asked for {self.requested} bars); "
                    "the services start cold")
        text = f"{self.bars} bars ({span}) feed regime and risk; no orders, not in the returns"
        if self.short:
            text += f"; asked for {self.requested}, the history before --start is shorter"
        return text


def available_bars(symbols: Iterable[str], start_ms: int, want: int,
                   history_dir: str | None) -> int:
    """Bar times (≤ ``want``) before ``start_ms`` that every symbol's history covers: counted
    back from ``start_ms`` to the latest first bar among the symbols in that span."""
    if want <= 0:
        return 0
    lo = start_ms - want * BAR_INTERVAL_MS
    first = lo
    for sym in symbols:
        try:
            bars = load_bars(sym, lo, start_ms - 1, directory=history_dir)
        except HistoryFileError:
            return 0
        if not bars:
            return 0
        first = max(first, bars[0].open_time_ms)
    return (start_ms - first) // BAR_INTERVAL_MS


def plan(cfg: RunConfig, bars: int | None = None) -> tuple[RunConfig, Warmup]:
    """``cfg`` with its replay moved ``bars`` bar times earlier (``None``:
    :func:`default_warmup_bars`; 0: off, ``cfg`` unchanged) where the history has them, and the
    signal service told where trading starts; with the :class:`Warmup` it got."""
    if bars is not None and bars < 0:
        raise ValueError(f"--warmup-bars must be >= 0, got {bars}")
    want = default_warmup_bars(cfg.extra_env) if bars is None else bars
    have = available_bars(cfg.symbols, cfg.start_ms, want, cfg.history_dir)
    w = Warmup(requested=want, bars=have, start_ms=cfg.start_ms - have * BAR_INTERVAL_MS,
               trade_start_ms=cfg.start_ms)
    if have == 0:
        return cfg, w
    env = {**cfg.extra_env, TRADE_START_ENV: str(cfg.start_ms)}
    return dataclasses.replace(cfg, start_ms=w.start_ms, extra_env=env), w


def trade_start_ms(cfg: RunConfig) -> int:
    """Where ``cfg``'s trading starts: after its warm-up, if :func:`plan` gave it one."""
    return int(cfg.extra_env.get(TRADE_START_ENV, cfg.start_ms))


def _time_ms(env: Any) -> int:
    body = env.body
    for name in ("open_time_ms", "bar_time_ms"):
        t = getattr(body, name, None)
        if isinstance(t, int):
            return t
    return int(env.ts_event_ns // 1_000_000)


def trim(record: RunRecord, start_ms: int) -> RunRecord:
    """``record`` without the events of the warm-up: those of a bar that opens before
    ``start_ms`` (by the body's ``open_time_ms`` or ``bar_time_ms``; an event with neither, by
    its event time). Dead-letter counts are kept whole."""
    return RunRecord(streams={s: [e for e in envs if _time_ms(e) >= start_ms]
                              for s, envs in record.streams.items()},
                     dead_letters=dict(record.dead_letters))
