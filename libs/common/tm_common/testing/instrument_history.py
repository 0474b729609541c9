"""A USDT perpetual the project does not ship, for the "any instrument" tests: its lot filters
(a whole-coin qty step and a 5 USDT minimum notional, unlike BTC/ETH/SOL) written beside a
history folder as ``<SYMBOL>_instrument.json``, the venue's instruments-info answer."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from tm_common.history import instrument_file
from tm_common.instruments import InstrumentSpec

UNSHIPPED_SYMBOL = "ZZZUSDT"
UNSHIPPED_START_PRICE = 2.0      # USDT: one coin (= one qty step) is worth about 2 USDT


def unshipped_spec(symbol: str = UNSHIPPED_SYMBOL, **overrides: object) -> InstrumentSpec:
    """Filters of a cheap coin: tick 0.0001, qty step = min qty = 1 coin, market orders up to
    100,000 coins, limit orders up to 1,000,000, min notional 5 USDT; ``overrides`` replace
    fields by name."""
    fields: dict[str, object] = dict(
        symbol=symbol, base_coin=symbol.removesuffix("USDT"), tick_size=Decimal("0.0001"),
        qty_step=Decimal(1), min_order_qty=Decimal(1), max_order_qty=Decimal(1_000_000),
        max_mkt_order_qty=Decimal(100_000), min_notional=Decimal(5), max_leverage=Decimal(25),
        price_scale=4, min_price=Decimal("0.0001"), max_price=Decimal("199.9998"))
    fields.update(overrides)
    return InstrumentSpec(**fields)  # type: ignore[arg-type]


def write_instrument(directory: str | Path, spec: InstrumentSpec) -> Path:
    """Write ``spec`` as a V5 instruments-info answer into ``directory``; returns the file."""
    path = instrument_file(spec.symbol, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    answer = {"retCode": 0, "retMsg": "OK",
              "result": {"category": "linear", "list": [spec.info()], "nextPageCursor": ""}}
    path.write_text(json.dumps(answer, indent=1) + "\n", encoding="utf-8")
    return path


def write_history(directory: str | Path, symbol: str = UNSHIPPED_SYMBOL, *, start_ms: int,
                  n_bars: int, start_price: float = UNSHIPPED_START_PRICE, seed: int = 11,
                  autocorr: float = 0.35, vol: float = 0.012, funding_every_h: int = 8) -> Path:
    """Write ``<SYMBOL>_4h.csv`` and ``<SYMBOL>_funding_8h.csv`` (the shipped layout) into
    ``directory``: ``n_bars`` 4 h bars from ``start_ms`` whose log returns are AR(1) with
    coefficient ``autocorr`` (a learnable momentum, so a trained model takes positions) and
    innovation s.d. ``vol``; funding every ``funding_every_h`` hours (the file keeps its name
    whatever the interval), small noise. Same seed → same files."""
    import random

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    price, ret = start_price, 0.0
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(n_bars):
        ret = autocorr * ret + rng.gauss(0.0, vol)
        close = price * (2.718281828459045 ** ret)
        wick = abs(rng.gauss(0.0, vol)) * 0.5
        hi, lo = max(price, close) * (1 + wick), min(price, close) * (1 - wick)
        lines.append(f"{start_ms + i * 14_400_000},{price:.6f},{hi:.6f},{lo:.6f},{close:.6f},"
                     f"{rng.uniform(1e5, 1e6):.2f}")
        price = close
    (out / f"{symbol}_4h.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    every_ms = funding_every_h * 3_600_000
    funding = ["timestamp,funding_rate"] + [
        f"{start_ms + k * every_ms},{rng.gauss(1e-4, 1e-4):.8f}"
        for k in range(n_bars * 4 // funding_every_h)]
    (out / f"{symbol}_funding_8h.csv").write_text("\n".join(funding) + "\n", encoding="utf-8")
    return out
