from tm_common.service import serve

import tm_signal.lean  # noqa: F401  (before tm_signal.app imports xgboost)
from tm_signal.app import build
from tm_signal.config import SignalSettings

if __name__ == "__main__":
    raise SystemExit(serve(build, SignalSettings()))
