"""Look-ahead detector: a row computed on the full history must equal the same row computed on
the history cut at that row's close.

If ``compute_fn`` peeks at anything after bar t (a forward shift, a centred window, a whole-sample
normalisation, a side series joined before it was known), the value of row t changes when the
future is removed, and :func:`assert_no_lookahead` names the row and the feature.

Each side series is cut at its own *known-at* time (``timestamp + delay``): a DVOL row stamped
day d is removed until d + 1 day, so a join that forgets the DVOL shift is caught too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from tm_quant.features.spec import BAR_MS, DVOL_DELAY_MS, FUNDING_DELAY_MS

#: ms from a row's ``timestamp`` until it is known, per keyword of ``compute_batch``.
DEFAULT_DELAYS_MS: dict[str, int] = {
    "bars": BAR_MS, "btc_bars": BAR_MS, "dvol": DVOL_DELAY_MS, "funding": FUNDING_DELAY_MS,
}


class LookaheadError(AssertionError):
    """Row t differs between the full and the truncated history: the feature sees the future."""


def _as_columns(table: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {str(k): np.asarray(table[k]) for k in table}


def _matrix(result: Any) -> tuple[np.ndarray, list[str]]:
    if isinstance(result, tuple):
        x, names = result
    else:
        x, names = result, None
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return x, list(names) if names is not None else [f"col{j}" for j in range(x.shape[1])]


def assert_no_lookahead(compute_fn: Callable[..., Any], data: Mapping[str, Mapping[str, Any] | None],
                        checkpoints: Iterable[int], *, bar_key: str = "bars",
                        delays_ms: Mapping[str, int] | None = None, rtol: float = 1e-9,
                        atol: float = 1e-12) -> int:
    """Check that row t of ``compute_fn(**data)`` only depends on data known at bar t's close.

    Args:
        compute_fn: called as ``compute_fn(**tables)``; returns a 2-D array with one row per bar of
            ``data[bar_key]`` (or a 1-D array, or ``(array, names)`` like ``compute_batch``).
        data: keyword → table with an int ms ``timestamp`` column (DataFrame or dict of arrays), or
            None. Tables are passed to ``compute_fn`` as dicts of numpy arrays, full or truncated.
        checkpoints: row indices of ``data[bar_key]`` to test (negative counts from the end).
        bar_key: the keyword holding the instrument's bars (one output row per bar).
        delays_ms: known-at delay per keyword; defaults to :data:`DEFAULT_DELAYS_MS`. Every
            non-None table must have one.
        rtol, atol: tolerance of the comparison; NaN equals only NaN.

    Returns:
        The number of values compared (so a caller can assert that something was checked).

    Raises:
        LookaheadError: some row differs; the message lists the checkpoints and features.
        KeyError: a table without a delay.
    """
    delays = dict(DEFAULT_DELAYS_MS if delays_ms is None else delays_ms)
    tables = {k: (None if t is None else _as_columns(t)) for k, t in data.items()}
    for k, table in tables.items():
        if table is not None and k not in delays:
            raise KeyError(f"no known-at delay for {k!r}: pass delays_ms")
    full, names = _matrix(compute_fn(**tables))
    bars = tables[bar_key]
    if bars is None:
        raise TypeError(f"data[{bar_key!r}] is None: the bars are required")
    bar_ts = bars["timestamp"].astype(np.int64)
    n = bar_ts.shape[0]
    if full.shape[0] != n:
        raise ValueError(f"compute_fn gave {full.shape[0]} rows for {n} bars")
    failures: list[str] = []
    checked = 0
    for t in sorted({(c + n) if c < 0 else c for c in checkpoints}):
        if not 0 <= t < n:
            raise IndexError(f"checkpoint {t} outside 0..{n - 1}")
        cutoff = int(bar_ts[t]) + delays[bar_key]
        cut: dict[str, dict[str, np.ndarray] | None] = {}
        for k, tab in tables.items():
            if tab is None:
                cut[k] = None
                continue
            keep = tab["timestamp"].astype(np.int64) + delays[k] <= cutoff
            cut[k] = {col: arr[keep] for col, arr in tab.items()}
        part, _ = _matrix(compute_fn(**cut))
        if part.shape[0] != t + 1:
            raise ValueError(f"truncated run at {t} gave {part.shape[0]} rows, expected {t + 1}")
        a, b = full[t], part[t]
        same = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        checked += a.shape[0]
        if not same.all():
            bad = [f"{names[j]} (full {a[j]!r} vs past-only {b[j]!r})" for j in np.flatnonzero(~same)]
            failures.append(f"row {t}: " + ", ".join(bad[:8]) + (" ..." if len(bad) > 8 else ""))
    if failures:
        raise LookaheadError("look-ahead detected:\n" + "\n".join(failures))
    return checked
