"""The signal process without scikit-learn (imported first by ``python -m tm_signal``).

scikit-learn is a training dependency, absent from the runtime image. Where it is installed (a
development venv), importing xgboost loads it, and scipy and pandas with it (about 90 MiB), for
xgboost's scikit-learn wrappers, which this service never uses: it serves boosters and numpy
predictors. The process keeps scikit-learn out, so that it runs with the memory it has in the
image (`bench/bench_mesh.py` measures its peak RSS against its 150 MiB budget). Only the
service's process does this; importing ``tm_signal`` elsewhere (tests, the backtest) does not.
"""

import sys

sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]  # an ImportError to xgboost
