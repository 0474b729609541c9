"""Pure signal logic: features per bar, model inference, decision, live IC, BTC ordering.

No I/O here: bars, DVOL and history come in as values; the handler does the fetching.
"""

from tm_common.errors import ModelUnusable as ModelLoadError

from tm_signal.domain.bars import BarIn
from tm_signal.domain.engine import EngineConfig, SignalEngine, SignalOut, decide
from tm_signal.domain.model import SignalModel

__all__ = ["BarIn", "EngineConfig", "ModelLoadError", "SignalEngine", "SignalModel", "SignalOut",
           "decide"]
