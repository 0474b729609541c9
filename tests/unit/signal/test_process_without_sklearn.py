"""The signal process keeps scikit-learn out (``tm_signal/lean.py``, imported first by its
``__main__``), so a development venv runs it with the memory of the runtime image: xgboost then
loads neither scikit-learn nor pandas, and still trains and predicts a booster."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import tm_signal.__main__
import numpy as np
import xgboost as xgb
x = np.random.default_rng(0).normal(size=(64, 3)); y = (x[:, 0] > 0).astype(float)
b = xgb.train({"max_depth": 2, "objective": "binary:logistic"}, xgb.DMatrix(x, label=y), 3)
p = b.inplace_predict(x[:4])
loaded = [m for m in ("sklearn", "pandas") if sys.modules.get(m) is not None]
print(len(p), loaded)
"""


def test_the_signal_process_runs_xgboost_without_loading_sklearn_or_pandas():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "4 []"
