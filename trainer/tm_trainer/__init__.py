"""Trainer job: walk-forward training with Boruta selection, transfer-learned XGBoost, gates,
regime HMMs, and the model registry (``tm train``, ``tm models``).

Modules: :mod:`.config` (every knob, defaults), :mod:`.data` (history → features/labels),
:mod:`.walkforward` (``make_splits`` and the OOS loop), :mod:`.selection` (Boruta),
:mod:`.model` (base + per-instrument continuation), :mod:`.evaluate` (IC, hit rate, Sharpe,
gates), :mod:`.pipeline` (a full run), :mod:`.update` (weekly update), :mod:`.regime_train`,
:mod:`.registry_ops` (register/promote/publish), :mod:`.report`, :mod:`.cli`.
"""

import os

import tm_common  # noqa: F401 - first: it pins OpenBLAS's kernels before numpy loads

# xgboost's OpenMP threads spin-wait by default; on a machine whose cores are shared with other
# jobs that made Boruta ~14x slower (127 s vs 9 s measured). Passive waiting must be chosen before
# the OpenMP runtime loads, i.e. before xgboost is imported: hence here, and only as a default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
