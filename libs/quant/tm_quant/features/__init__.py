"""Per-instrument features from 4h bars, DVOL, funding and BTC: batch (trainer) and incremental (live).

``compute_batch`` and ``IncrementalFeatures`` give the same numbers for the same inputs (tested);
definitions and units are in :mod:`tm_quant.features.spec`.
"""

from tm_quant.features.align import asof
from tm_quant.features.batch import compute_batch
from tm_quant.features.incremental import IncrementalFeatures
from tm_quant.features.spec import (
    BAR_MS,
    BARS_PER_YEAR,
    DVOL_DELAY_MS,
    FEATURE_NAMES,
    FUNDING_DELAY_MS,
    N_FEATURES,
    WARMUP_BARS,
    Bar,
)

__all__ = [
    "BARS_PER_YEAR",
    "BAR_MS",
    "DVOL_DELAY_MS",
    "FEATURE_NAMES",
    "FUNDING_DELAY_MS",
    "N_FEATURES",
    "WARMUP_BARS",
    "Bar",
    "IncrementalFeatures",
    "asof",
    "compute_batch",
]
