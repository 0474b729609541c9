"""Out-of-sample signals for the RL sizer: what the policy may learn from.

The RL policy trains **only** on out-of-sample (OOS) signals: predictions made for bars that the
model producing them never saw. The trainer's own walk-forward (``tm_trainer``, another module)
does not expose its per-window OOS predictions yet, so :func:`walk_forward_probabilities` is a
small, self-contained walk-forward of our own, documented here and replaceable: anything that
yields per-bar OOS probabilities can go through :func:`oos_from_predictions` instead.

Our walk-forward, per instrument: features ``tm_quant.features.compute_batch`` (bars, BTC DVOL,
funding, BTC cross for ETH/SOL), label ``forward_log_return(close, horizon) > 0``. Test windows of
``test_bars`` bars start at ``first_test_bar``; the model of a window is an ``XGBClassifier``
fitted on rows ``[WARMUP_BARS, start - purge_bars)`` (expanding window; ``purge_bars`` >=
``horizon_bars`` so no training label reaches into the test window), seeded. ``predict_proba``
of the window's rows is the probability (the logistic objective is already a probability; no
extra calibration).

Per OOS bar t, :func:`oos_from_predictions` derives (all causal, i.e. known at bar t's close):
confidence ``|2p - 1|`` and direction ``sign(p - 0.5)`` (as the signal service), the live IC
(Spearman of the last ``ic_window`` predictions whose label matured by t, ``s + horizon <= t``),
the regime (GARCH(1,1)-t and the 4-state HMM fitted on the bars *before* the first OOS window
minus the purge, then filtered forward bar by bar, as the regime service does), the last three log
returns; and, for the reward only, the next bar's simple return and the funding settled during it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from tm_quant.features import BAR_MS, WARMUP_BARS, compute_batch
from tm_quant.garch import GarchFilter, fit_garch
from tm_quant.labels import forward_log_return, spearman_ic
from tm_quant.regime import RegimeFilter, fit_regime_model, regime_observation


@dataclass(frozen=True)
class WalkForwardConfig:
    """Walk-forward and derived-series settings (bars are 4 h)."""

    horizon_bars: int = 6
    first_test_bar: int = 2600
    test_bars: int = 180
    purge_bars: int = 200
    n_estimators: int = 150
    max_depth: int = 3
    learning_rate: float = 0.05
    seed: int = 7
    ic_window: int = 60
    ic_min_pairs: int = 20

    def __post_init__(self) -> None:
        if self.purge_bars < self.horizon_bars:
            raise ValueError("purge_bars must be >= horizon_bars (labels would leak)")
        if self.first_test_bar - self.purge_bars <= WARMUP_BARS + 100:
            raise ValueError("first_test_bar leaves too few training rows")


@dataclass(frozen=True, eq=False)
class OOSData:
    """OOS rows of one instrument (row = bar, ascending). Every column is known at the bar's close
    except ``next_ret`` and ``funding_next`` (the reward's)."""

    instrument: str
    bar_time_ms: np.ndarray       # int64, bar open time
    probability: np.ndarray
    confidence: np.ndarray
    direction: np.ndarray         # int64 in {-1, 0, 1}
    live_ic: np.ndarray           # NaN = not enough matured predictions
    regime_probs: np.ndarray      # (n, 4) Bull, Neutral, Bear, Crisis
    volatility: np.ndarray        # GARCH sigma_{t+1|t}, decimal per bar
    returns3: np.ndarray          # (n, 3) log returns r_t, r_{t-1}, r_{t-2}
    next_ret: np.ndarray          # simple return of bar t+1 (reward only)
    funding_next: np.ndarray      # funding rate settled during bar t+1 (reward only)
    window: np.ndarray            # int64 walk-forward window index

    def __len__(self) -> int:
        return int(self.bar_time_ms.shape[0])

    def rows(self, mask: np.ndarray) -> OOSData:
        """The rows where ``mask`` holds (a boolean array or an index array)."""
        return OOSData(self.instrument, **{f.name: getattr(self, f.name)[mask]
                                           for f in fields(self) if f.name != "instrument"})

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "instrument"}

    def digest(self) -> str:
        h = hashlib.sha256(self.instrument.encode())
        for name, a in sorted(self.arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def data_hash(data: Sequence[OOSData]) -> str:
    """sha256 over every instrument's OOS arrays (registry ``data_hash``)."""
    h = hashlib.sha256()
    for d in data:
        h.update(d.digest().encode())
    return h.hexdigest()


def window_starts(n: int, cfg: WalkForwardConfig) -> list[int]:
    return list(range(cfg.first_test_bar, n, cfg.test_bars))


def walk_forward_probabilities(X: np.ndarray, close: np.ndarray,
                               cfg: WalkForwardConfig) -> tuple[np.ndarray, np.ndarray]:
    """OOS P(up) per row (NaN outside the test windows) and the window index (-1 outside).

    Args:
        X: (n, k) features (NaN allowed; xgboost handles missing values).
        close: (n,) closes.
    """
    from xgboost import XGBClassifier  # lazy: training-time dependency

    n = X.shape[0]
    y = forward_log_return(close, cfg.horizon_bars)
    prob, win = np.full(n, np.nan), np.full(n, -1, dtype=np.int64)
    for k, s in enumerate(window_starts(n, cfg)):
        e = min(s + cfg.test_bars, n)
        rows = np.arange(WARMUP_BARS, s - cfg.purge_bars)
        rows = rows[np.isfinite(y[rows])]        # labels known by the cut (purge >= horizon)
        clf = XGBClassifier(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth,
                            learning_rate=cfg.learning_rate, subsample=0.8, colsample_bytree=0.8,
                            random_state=cfg.seed + k, n_jobs=1, tree_method="hist",
                            eval_metric="logloss")
        clf.fit(X[rows], (y[rows] > 0).astype(np.int64))
        prob[s:e] = clf.predict_proba(X[s:e])[:, 1]
        win[s:e] = k
    return prob, win


def oos_from_predictions(instrument: str, timestamp: np.ndarray, close: np.ndarray,
                         prob: np.ndarray, window: np.ndarray, cfg: WalkForwardConfig, *,
                         funding_time: np.ndarray | None = None,
                         funding_rate: np.ndarray | None = None,
                         regime_fit_end: int | None = None, seed: int = 7) -> OOSData:
    """Derive the OOS rows (module docstring) from per-bar probabilities.

    Args:
        timestamp, close: all bars of the instrument (ascending open times, ms; closes > 0).
        prob: P(up) per bar, NaN where there is no OOS prediction.
        window: walk-forward window per bar (-1 outside).
        funding_time, funding_rate: settlements (ms) and rates (decimal per 8 h), or None.
        regime_fit_end: bars ``[0, regime_fit_end)`` fit GARCH and the HMM (default: the first
            OOS bar minus the purge).
    """
    ts = np.asarray(timestamp, dtype=np.int64)
    c = np.asarray(close, dtype=np.float64)
    n = c.shape[0]
    ok = np.isfinite(prob)
    first = int(np.argmax(ok)) if ok.any() else n
    fit_end = regime_fit_end if regime_fit_end is not None else first - cfg.purge_bars
    r = np.zeros(n)
    r[1:] = np.log(c[1:] / c[:-1])
    garch = fit_garch(r[1:fit_end])
    sigma = GarchFilter(garch).run(100.0 * r[1:]) / 100.0     # sigma[t-1] = sigma_{t+1|t}
    vol = np.concatenate([[np.nan], sigma])
    obs = regime_observation(r[1:fit_end], vol[1:fit_end])
    filt = RegimeFilter(fit_regime_model(obs, seed, n_iter=100, n_restarts=2))
    probs = np.full((n, 4), 0.25)
    for t in range(1, n):
        probs[t] = filt.update(regime_observation(r[t], vol[t])).probs
    vol[0] = vol[1] if n > 1 else np.nan
    label = forward_log_return(c, cfg.horizon_bars)
    ic = _live_ic(prob, label, cfg)
    rets3 = np.stack([r, _shift(r, 1), _shift(r, 2)], axis=1)
    next_ret = np.full(n, np.nan)
    next_ret[:-1] = c[1:] / c[:-1] - 1.0
    fund = _funding_next(ts, funding_time, funding_rate)
    keep = ok & np.isfinite(next_ret)
    keep[0] = False
    p = np.where(ok, prob, 0.5)
    d = OOSData(instrument, ts, p, np.abs(2 * p - 1), np.sign(p - 0.5).astype(np.int64), ic,
                probs, vol, rets3, next_ret, fund, np.asarray(window, dtype=np.int64))
    return d.rows(keep)


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(x)
    out[k:] = x[:-k]
    return out


def _live_ic(prob: np.ndarray, label: np.ndarray, cfg: WalkForwardConfig) -> np.ndarray:
    """IC at t over predictions s with ``s + horizon <= t`` (matured), the last ``ic_window``."""
    n, h = prob.shape[0], cfg.horizon_bars
    out = np.full(n, np.nan)
    have = np.flatnonzero(np.isfinite(prob) & np.isfinite(label))
    for t in range(n):
        if not np.isfinite(prob[t]):
            continue
        matured = have[: np.searchsorted(have, t - h, side="right")][-cfg.ic_window:]
        if matured.shape[0] >= cfg.ic_min_pairs:
            out[t] = spearman_ic(prob[matured], label[matured])
    return out


def _funding_next(ts: np.ndarray, ft: np.ndarray | None, fr: np.ndarray | None) -> np.ndarray:
    """Sum of rates settled in ``(close_t, close_{t+1}]`` (the bar the position is held over)."""
    n = ts.shape[0]
    out = np.zeros(n)
    if ft is None or fr is None or len(ft) == 0:
        return out
    ft, fr = np.asarray(ft, dtype=np.int64), np.asarray(fr, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(fr)])
    close_t = ts + BAR_MS
    close_next = np.append(ts[1:] + BAR_MS, ts[-1] + 2 * BAR_MS)
    lo = np.searchsorted(ft, close_t, side="right")
    hi = np.searchsorted(ft, close_next, side="right")
    return cum[hi] - cum[lo]


def load_history(symbols: Sequence[str], directory: str | None = None) -> dict[str, dict]:
    """Bars, funding and BTC DVOL from the shipped history files, as arrays per symbol."""
    from tm_common import history as files  # lazy: I/O stays out of the pure functions

    dvol = files.load_dvol("BTC", directory=directory)
    dv = {"timestamp": np.array([p.day_ms for p in dvol], dtype=np.int64),
          "dvol_close": np.array([float(p.close) for p in dvol])}
    out = {}
    for sym in symbols:
        bars = files.load_bars(sym, directory=directory)
        b = {"timestamp": np.array([x.open_time_ms for x in bars], dtype=np.int64),
             **{f: np.array([float(getattr(x, f)) for x in bars])
                for f in ("open", "high", "low", "close", "volume")}}
        try:
            fund = files.load_funding(sym, directory=directory)
        except files.HistoryFileError:
            fund = []
        f = {"timestamp": np.array([x.time_ms for x in fund], dtype=np.int64),
             "funding_rate": np.array([float(x.rate) for x in fund])}
        out[sym] = {"bars": b, "funding": f, "dvol": dv}
    return out


def build_oos(history: Mapping[str, Mapping], cfg: WalkForwardConfig,
              btc_symbol: str = "BTCUSDT") -> list[OOSData]:
    """Walk-forward + derived series for every symbol of ``history`` (:func:`load_history`)."""
    out = []
    btc = history.get(btc_symbol, {}).get("bars")
    for sym, h in history.items():
        X, _ = compute_batch(h["bars"], h.get("dvol"), h.get("funding"),
                             None if sym == btc_symbol else btc)
        close = h["bars"]["close"]
        prob, win = walk_forward_probabilities(X, close, cfg)
        f = h.get("funding") or {}
        out.append(oos_from_predictions(sym, h["bars"]["timestamp"], close, prob, win, cfg,
                                        funding_time=f.get("timestamp"),
                                        funding_rate=f.get("funding_rate"), seed=cfg.seed))
    return out


def config_dict(cfg: WalkForwardConfig) -> dict:
    return asdict(cfg)
