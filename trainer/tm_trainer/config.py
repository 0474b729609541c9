"""Training configuration: one frozen object, with the defaults that ARCHITECTURE §7 prescribes.

Hyper-parameters are **fixed defaults**, not tuned: a grid chosen by inner CV would multiply the
cost of every walk-forward window, and on 4 h crypto returns (signal-to-noise near zero) a tuned
grid mostly fits noise. The values are deliberately conservative (shallow trees, strong
regularisation, row/column subsampling). Trees need no scaling, so no scaler is fitted anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tm_common.instruments import DEFAULT_SYMBOLS
from tm_quant.labels import LABELS
from tm_quant.turnover import hold_bars_for

#: 2025-01-01 00:00 UTC: training stops here by default, so the shipped data from 2025 on (the demo
#: replay window) stays out of sample.
DEFAULT_TRAIN_END_MS = 1_735_689_600_000
DEFAULT_INSTRUMENTS = DEFAULT_SYMBOLS


@dataclass(frozen=True)
class XgbConfig:
    """XGBoost settings (``binary:logistic`` on ``forward return > 0``; output = probability).

    ``base_rounds`` trees for the pooled base model, then ``instrument_rounds`` trees added per
    instrument at learning rate ``instrument_eta``; ``update_rounds`` added by a weekly update.
    """

    max_depth: int = 3
    eta: float = 0.05
    instrument_eta: float = 0.03
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 50.0
    reg_lambda: float = 5.0
    max_bin: int = 64
    base_rounds: int = 150
    instrument_rounds: int = 50
    update_rounds: int = 20
    nthread: int = 2

    def params(self, seed: int, *, eta: float | None = None) -> dict:
        """The ``xgb.train`` parameter dict (hist, CPU, ``nthread`` threads, seeded)."""
        return {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
                "max_depth": self.max_depth, "eta": self.eta if eta is None else eta,
                "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
                "min_child_weight": self.min_child_weight, "lambda": self.reg_lambda,
                "max_bin": self.max_bin, "nthread": self.nthread, "seed": seed, "verbosity": 0}


@dataclass(frozen=True)
class BorutaConfig:
    """Boruta (BorutaPy + an ``XGBClassifier`` estimator) run on a training window only.

    ``reselect_every``: the selection is re-run every this many walk-forward windows and reused
    in between (it only saw data before the first of those windows, so reuse cannot leak);
    ``max_rows``: Boruta sees the most recent rows of the training window (bounds the cost).
    ``n_estimators``: trees per Boruta iteration, fixed: BorutaPy's "auto" sizes a *random
    forest* (~240 trees for 46 features + shadows, 24 s CPU per selection); boosted trees
    split on the informative columns far sooner, so 50 is enough and ~5x cheaper.
    """

    min_features: int = 9
    max_features: int = 13
    n_estimators: int = 50
    max_iter: int = 30
    n_iter_no_change: int = 10
    max_depth: int = 4
    reselect_every: int = 10
    max_rows: int = 4000
    min_coverage: float = 0.5  # a candidate needs >= 50 % finite values in the training window


@dataclass(frozen=True)
class GateConfig:
    """Promotion gates on the walk-forward OOS report (all must hold; :mod:`tm_trainer.honest`).

    ``min_ic``, ``min_sharpe``: the classic gates (pooled OOS IC, annualised net Sharpe).
    ``min_dsr``: deflated Sharpe ratio (probability, given the trials on the same data).
    ``min_timing_t``: one-sided t statistic of the timing component (return beyond a constant
    exposure equal to the average position), 1.645 = 5 %.
    ``consistency_periods`` / ``min_positive_share``: the OOS span in this many contiguous
    sub-periods, net return positive in at least this share of them.
    """

    min_ic: float = 0.03
    min_sharpe: float = 0.5
    min_dsr: float = 0.95
    min_timing_t: float = 1.645
    consistency_periods: int = 4
    min_positive_share: float = 0.75


@dataclass(frozen=True)
class CostConfig:
    """Costs of the sign-following evaluation strategy, per unit of position change (a flip
    from long to short is 2 units): taker fee 0.055 % + slippage 2 bps."""

    taker_fee: float = 0.00055
    slippage: float = 0.0002

    @property
    def per_unit(self) -> float:
        return self.taker_fee + self.slippage


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (with the data, it fixes the result bit for bit).

    Attributes:
        instruments: symbols to train (default BTC/ETH/SOL USDT perps).
        horizon_bars: label horizon in 4 h bars (default 6 = 1 day).
        n_windows: walk-forward test windows (default 40), each ``window_bars`` bars (42 = 1 week),
            ending at ``train_end_ms``.
        purge_bars: gap between a training set and its test window, on top of the horizon
            (default 200 bars).
        min_train_bars: smallest allowed training set (bars, before warm-up removal).
        train_end_ms: training cut-off (bars with open time >= it are never loaded for training);
            default 2025-01-01 UTC.
        seed: seeds Boruta, XGBoost and the HMM.
        history_dir: folder of the CSV history (None = the repository's ``data/history``).
        regime_restarts: HMM restarts per instrument.
        label: ``log_return`` (default) or ``vol_scaled`` (:mod:`tm_quant.labels`): what a
            family's fit sees as ``TrainRows.fwd``; the label's sign, the OOS IC (against the
            forward log return) and the gates are the same either way.
        turnover_budget_per_year: None (default: the OOS strategy re-decides every bar) or
            units of position change a year the evaluated strategy may use; met by hysteresis
            (``turnover_band`` around P(up) = 0.5) and a minimum holding time
            (:mod:`tm_quant.turnover`, :mod:`tm_trainer.turnover`); the gates judge it.
    """

    instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS
    horizon_bars: int = 6
    n_windows: int = 40
    window_bars: int = 42
    purge_bars: int = 200
    min_train_bars: int = 1500
    train_end_ms: int = DEFAULT_TRAIN_END_MS
    seed: int = 7
    history_dir: Path | None = None
    regime_restarts: int = 3
    xgb: XgbConfig = field(default_factory=XgbConfig)
    boruta: BorutaConfig = field(default_factory=BorutaConfig)
    gates: GateConfig = field(default_factory=GateConfig)
    costs: CostConfig = field(default_factory=CostConfig)
    label: str = LABELS[0]
    turnover_budget_per_year: float | None = None
    turnover_band: float = 0.0

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, not {self.label!r}")
        if self.turnover_budget_per_year is not None:
            hold_bars_for(self.turnover_budget_per_year)        # a clear error when not > 0
        if not (0.0 <= self.turnover_band < 0.5):
            raise ValueError(f"turnover_band must be in [0, 0.5), got {self.turnover_band}")
        if not self.instruments:
            raise ValueError("at least one instrument is needed")
        if self.horizon_bars < 1 or self.n_windows < 1 or self.window_bars < 1 or self.purge_bars < 0:
            raise ValueError("horizon, windows and window size must be >= 1, purge >= 0")
        g = self.gates
        if not (0.0 <= g.min_dsr <= 1.0 and 0.0 <= g.min_positive_share <= 1.0
                and g.consistency_periods >= 1 and math.isfinite(g.min_timing_t)):
            raise ValueError("gates: min_dsr and min_positive_share in [0, 1], "
                             "consistency_periods >= 1, min_timing_t finite")
        b = self.boruta
        if not 1 <= b.min_features <= b.max_features:
            raise ValueError("Boruta needs 1 <= min_features <= max_features")

    def fast(self) -> TrainConfig:
        """A reduced configuration for CI (seconds, not minutes): 4 windows, few small trees."""
        return replace(self, n_windows=min(self.n_windows, 4), regime_restarts=1,
                       xgb=replace(self.xgb, base_rounds=20, instrument_rounds=10, update_rounds=5),
                       boruta=replace(self.boruta, max_iter=8, n_iter_no_change=4, max_rows=1500,
                                      reselect_every=4))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["instruments"] = list(self.instruments)
        d["history_dir"] = None  # where the files lie does not change the result; their hash does
        # the defaults of later settings leave the digest (and every version) as it was
        for k, default in (("label", LABELS[0]), ("turnover_budget_per_year", None),
                           ("turnover_band", 0.0)):
            if d[k] == default:
                del d[k]
        return d

    def digest(self) -> str:
        """sha256 of the configuration (JSON, sorted keys): part of a model version."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
