"""As-of alignment of side series (DVOL, funding, BTC bars) onto an instrument's bars.

One rule for every side series: a row becomes usable once its *known-at* time has passed,
``known_at = timestamp + delay_ms``, and a bar may use it when ``known_at <= query_ms`` (inclusive:
a funding settlement at 08:00 is known at the close of the bar that ends at 08:00). The last such
row wins; before the first one the value is NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def column(data: Mapping[str, Any], *names: str) -> np.ndarray:
    """The first of ``names`` present in ``data`` (DataFrame or dict of arrays), as float64/int64."""
    for name in names:
        if name in data:
            arr = np.asarray(data[name])
            return arr.astype(np.int64) if name == "timestamp" else arr.astype(np.float64)
    raise KeyError(f"none of the columns {names} found")


def asof(known_at_ms: np.ndarray, values: np.ndarray, query_ms: np.ndarray) -> np.ndarray:
    """For each query time, the last value whose known-at time is <= the query (NaN if none).

    Args:
        known_at_ms: int64 ms UTC, any order (sorted stably here; on ties the later row wins).
        values: float64, same length.
        query_ms: int64 ms UTC.
    """
    known_at_ms = np.asarray(known_at_ms, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(known_at_ms, kind="stable")
    k, v = known_at_ms[order], values[order]
    idx = np.searchsorted(k, np.asarray(query_ms, dtype=np.int64), side="right") - 1
    out = np.full(idx.shape, np.nan)
    ok = idx >= 0
    out[ok] = v[idx[ok]]
    return out


def asof_series(series: Mapping[str, Any] | None, value_names: tuple[str, ...], delay_ms: int,
                query_ms: np.ndarray) -> np.ndarray:
    """:func:`asof` on a ``timestamp`` + value-column table; all NaN when ``series`` is None."""
    if series is None:
        return np.full(np.shape(query_ms), np.nan)
    ts = column(series, "timestamp")
    return asof(ts + delay_ms, column(series, *value_names), query_ms)
