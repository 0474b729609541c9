"""Pure regime logic: GARCH + HMM forward filter per instrument and bar (no I/O)."""

from tm_common.errors import ModelUnusable as ModelLoadError

from tm_regime.domain.engine import RegimeConfig, RegimeEngine, RegimeOut
from tm_regime.domain.model import RegimeBundleModel

__all__ = ["ModelLoadError", "RegimeBundleModel", "RegimeConfig", "RegimeEngine", "RegimeOut"]
