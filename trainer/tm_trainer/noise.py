"""False-pass rates of the gates on driftless random walks (nothing there can be predicted).

For each seed: :func:`tm_trainer.synthetic.write_random_walk_history` (GARCH-like volatility,
zero drift), then the real training run (:func:`tm_trainer.pipeline.train`, walk-forward purged as
always, one trial per seed: each seed is other data) of a signal family, and every gate evaluated
on its own and combined. Any pass here is a false pass. ``bench/bench_false_pass.py`` prints the
table over >= 20 seeds; ``tests/unit/trainer/test_false_pass.py`` runs a few seeds.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from tm_quant.features.spec import BAR_MS

from tm_trainer.config import TrainConfig
from tm_trainer.pipeline import train
from tm_trainer.synthetic import START_MS, write_random_walk_history

#: Gate name → test on a run's report (each on its own); "classic" and "all" combine them.
GATES = ("IC", "Sharpe", "deflated Sharpe", "timing", "consistency", "classic (IC+Sharpe)",
         "all")


@dataclass(frozen=True)
class NoiseConfig:
    """One random-walk run: ``n_bars`` 4 h bars of ``symbols``, ``n_windows`` weekly test
    windows, the signal ``family`` (default ``logistic``: seconds per seed)."""

    n_bars: int = 3000
    n_windows: int = 20
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    family: str = "logistic"


def gate_passes(report: dict, cfg: TrainConfig) -> dict[str, bool]:
    """Which gates this run's report passes, each alone, the classic pair and all together."""
    s, h, d, g = report["summary"], report["honest"], report["deflated_sharpe"], cfg.gates
    ic = s["mean_ic"] is not None and s["mean_ic"] >= g.min_ic
    sh = s["sharpe"] is not None and s["sharpe"] > g.min_sharpe
    dsr = d["dsr"] is not None and d["dsr"] >= g.min_dsr
    tim = h["timing"]["t_stat"] is not None and h["timing"]["t_stat"] >= g.min_timing_t
    con = h["consistency"]["positive_share"] is not None and \
        h["consistency"]["positive_share"] >= g.min_positive_share
    return {"IC": ic, "Sharpe": sh, "deflated Sharpe": dsr, "timing": tim, "consistency": con,
            "classic (IC+Sharpe)": ic and sh, "all": ic and sh and dsr and tim and con}


def run_seed(seed: int, nc: NoiseConfig, directory: str) -> dict:
    """One seed: its gates' verdicts and the numbers behind them."""
    write_random_walk_history(directory, seed=seed, n_bars=nc.n_bars, symbols=nc.symbols)
    folder = Path(directory)
    cfg = replace(TrainConfig(instruments=nc.symbols, history_dir=folder, seed=seed,
                              train_end_ms=START_MS + nc.n_bars * BAR_MS).fast(),
                  n_windows=nc.n_windows)
    r = train(cfg, regime=False, family=nc.family)
    rep = r.report
    return {"seed": seed, "passes": gate_passes(rep, cfg), "ic": rep["summary"]["mean_ic"],
            "sharpe": rep["summary"]["sharpe"], "dsr": rep["deflated_sharpe"]["dsr"],
            "timing_t": rep["honest"]["timing"]["t_stat"],
            "positive_share": rep["honest"]["consistency"]["positive_share"]}


def false_pass_table(seeds: range | list[int], nc: NoiseConfig | None = None,
                     progress=None) -> dict:
    """``{"runs": [run_seed(...)], "rates": {gate: passes / seeds}, "passes": {gate: count}}``."""
    nc = nc or NoiseConfig()
    runs = []
    with tempfile.TemporaryDirectory(prefix="tm-noise-") as tmp:
        for k, seed in enumerate(seeds):
            runs.append(run_seed(seed, nc, tmp))
            if progress:
                progress(k, runs[-1])
    n = max(1, len(runs))
    passes = {g: sum(r["passes"][g] for r in runs) for g in GATES}
    return {"seeds": len(runs), "family": nc.family, "n_bars": nc.n_bars,
            "n_windows": nc.n_windows, "symbols": list(nc.symbols), "runs": runs,
            "passes": passes, "rates": {g: passes[g] / n for g in GATES}}
