"""Seeded random-walk history in the shipped CSV layout (tests and demos of "no edge").

Closes follow a driftless Gaussian random walk in log price with GARCH-like volatility clustering
(so the volatility features are informative about volatility, never about direction); open, high,
low and volume are derived from it. Funding and DVOL are independent noise. Nothing in the files
predicts a future return, so a pipeline without look-ahead must find IC ≈ 0 on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tm_quant.features.spec import BAR_MS, DAY_MS

START_MS = 1_640_995_200_000  # 2022-01-01 UTC, like the shipped files


def _fmt(x: float) -> str:
    return f"{x:.6f}"


def write_random_walk_history(directory: str | Path, *, seed: int, n_bars: int = 2400,
                              symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
                              start_ms: int = START_MS,
                              start_prices: dict[str, float] | None = None) -> Path:
    """Write ``{SYM}_4h.csv``, ``{SYM}_funding_8h.csv`` and ``BTC_DVOL_1d.csv`` into ``directory``.

    Args:
        seed: numpy seed (same seed → same files).
        n_bars: 4 h bars per symbol (all symbols share the timeline).
        start_prices: first price per symbol (USDT; default 100 × (position in ``symbols`` + 1)).
    Returns:
        The directory.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ts = start_ms + BAR_MS * np.arange(n_bars, dtype=np.int64)
    for k, sym in enumerate(symbols):
        var, lp = 1e-4, np.log((start_prices or {}).get(sym, 100.0 * (k + 1)))
        lines = ["timestamp,open,high,low,close,volume"]
        prev = np.exp(lp)
        for t in ts:
            z = rng.standard_normal()
            var = 2e-6 + 0.08 * var * z * z + 0.9 * var  # clustering only, zero drift
            lp += np.sqrt(var) * z
            c = float(np.exp(lp))
            wick = abs(rng.normal(0, np.sqrt(var))) * 0.5
            hi, lo = max(prev, c) * (1 + wick), min(prev, c) * (1 - wick)
            vol = float(np.exp(rng.normal(8, 0.5)))
            lines.append(f"{t},{_fmt(prev)},{_fmt(hi)},{_fmt(lo)},{_fmt(c)},{_fmt(vol)}")
            prev = c
        (out / f"{sym}_4h.csv").write_text("\n".join(lines) + "\n")
        f_ts = start_ms + 8 * 3_600_000 * np.arange(n_bars // 2, dtype=np.int64)
        rates = rng.normal(1e-4, 1e-4, f_ts.size)
        (out / f"{sym}_funding_8h.csv").write_text(
            "timestamp,funding_rate\n" + "".join(f"{t},{r:.8f}\n" for t, r in zip(f_ts, rates,
                                                                                 strict=True)))
    days = start_ms + DAY_MS * np.arange(n_bars // 6 + 1, dtype=np.int64)
    dv = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, days.size)))
    (out / "BTC_DVOL_1d.csv").write_text(
        "timestamp,dvol_close\n" + "".join(f"{t},{v:.2f}\n" for t, v in zip(days, dv, strict=True)))
    return out
