"""Funding rates as features: a rate per 8 h, whatever the instrument's funding interval.

Bybit quotes a settled rate per funding interval: 8 h for BTC, ETH and SOL, 1, 2 or 4 h for
others, and it shortens an instrument's interval while its rate is at the cap. A 1 h rate is
about an eighth of the 8 h rate that costs the same, so a model trained on 8 h rates (every
shipped instrument, and BTC, which the other instruments' models are transferred from) would
read it as a near-zero funding pressure. The feature therefore scales each settled rate by
8 h / the time since the previous settlement, the interval it paid for:

- a gap of 8 h or more stays as it is (8 h is the longest interval; a longer gap is a missing
  row, not a longer interval), and so does the first settlement (no previous one);
- a gap under 1 h counts as 1 h (the shortest interval; a nearer row is a duplicate or a
  correction).

Every shipped rate is 8 h after the one before, so the shipped features are unchanged (a factor
of exactly 1 is never applied). The batch features (:func:`asof_per_8h`) and the live ones (the
signal service, :func:`per_8h` on each settlement with the one before) use the same arithmetic,
so they stay bit-identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tm_quant.features.align import asof, column
from tm_quant.features.spec import FUNDING_DELAY_MS

#: The interval a feature rate is quoted per (Bybit's longest, BTC's and ETH's).
PER_MS = 8 * 3_600_000
#: Bybit's shortest funding interval.
SHORTEST_MS = 3_600_000


def per_8h(rate: float, settle_ms: int, previous_ms: int | None) -> float:
    """``rate``, settled at ``settle_ms``, per 8 h given the settlement before it."""
    if previous_ms is None:
        return rate
    gap = settle_ms - previous_ms
    if gap <= 0 or gap >= PER_MS:
        return rate
    return rate * (PER_MS / max(gap, SHORTEST_MS))


def per_8h_series(settle_ms: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """:func:`per_8h` of each rate with the one before it (``settle_ms`` ascending)."""
    t = np.asarray(settle_ms, dtype=np.int64)
    out = np.array(rates, dtype=np.float64)
    gaps = np.diff(t)
    scaled = (gaps > 0) & (gaps < PER_MS)
    idx = np.flatnonzero(scaled) + 1
    out[idx] = out[idx] * (PER_MS / np.maximum(gaps[scaled], SHORTEST_MS))
    return out


def asof_per_8h(funding: Mapping[str, Any] | None, query_ms: np.ndarray) -> np.ndarray:
    """The last settled rate per 8 h known at each query time (NaN before the first; all NaN
    without ``funding``: ``timestamp`` and ``funding_rate`` columns, any order)."""
    if funding is None:
        return np.full(np.shape(query_ms), np.nan)
    ts = column(funding, "timestamp")
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    rates = per_8h_series(ts, column(funding, "funding_rate", "value")[order])
    return asof(ts + FUNDING_DELAY_MS, rates, query_ms)
