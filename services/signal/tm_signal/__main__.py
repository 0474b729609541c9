"""``python -m tm_signal``: the signal service's process.

scikit-learn is a training dependency, absent from the runtime image. Where it is installed (a
development venv), importing xgboost loads it, and scipy and pandas with it (about 90 MiB), for
xgboost's scikit-learn wrappers, which this service never uses: it serves boosters and numpy
predictors. The process keeps scikit-learn out, so that it runs with the memory it has in the
image (`bench/bench_mesh.py` measures this process's peak RSS against its 150 MiB budget).
"""

import sys

sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]  # an ImportError to xgboost

from tm_common.service import serve  # noqa: E402

from tm_signal.app import build  # noqa: E402
from tm_signal.config import SignalSettings  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(serve(build, SignalSettings()))
