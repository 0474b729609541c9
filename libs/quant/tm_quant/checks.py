"""The range check shared by the quant parameter objects (Kelly fractions, cascade thresholds,
Kelly settings): one rule, one message."""

from __future__ import annotations

from typing import SupportsFloat


def check_range(name: str, value: SupportsFloat, lo: float, hi: float) -> None:
    """Raise ``ValueError("<name> must be in [lo, hi], got <value>")`` unless
    ``lo <= float(value) <= hi`` (bounds inclusive; NaN is out of range)."""
    if not lo <= float(value) <= hi:
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value}")
