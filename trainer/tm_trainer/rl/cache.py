"""OOS data on disk: the walk-forward takes ~45 s for three instruments, so its result is kept
in ``<cache_dir>/rl_oos_<key>.npz`` (plain arrays, ``allow_pickle=False``). The key hashes the
walk-forward settings, the symbols and the bytes of the history files, so any change rebuilds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from tm_trainer.rl.oos import OOSData, WalkForwardConfig, build_oos, load_history


def cache_key(symbols: Sequence[str], cfg: WalkForwardConfig, history_dir: str | None) -> str:
    from tm_common import history as files

    h = hashlib.sha256(json.dumps({"cfg": asdict(cfg), "symbols": list(symbols)},
                                  sort_keys=True).encode())
    paths = [files.dvol_file("BTC", history_dir)]
    for s in symbols:
        paths += [files.bars_file(s, history_dir), files.funding_file(s, history_dir)]
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes() if p.is_file() else b"-")
    return h.hexdigest()[:16]


def save(path: Path, data: Sequence[OOSData]) -> None:
    arrays: dict[str, Any] = {f"{d.instrument}__{k}": v for d in data for k, v in d.arrays().items()}
    arrays["__symbols"] = np.array([d.instrument for d in data])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load(path: Path) -> list[OOSData]:
    names = [f.name for f in fields(OOSData) if f.name != "instrument"]
    with np.load(path, allow_pickle=False) as z:
        return [OOSData(str(s), **{k: z[f"{s}__{k}"] for k in names})
                for s in z["__symbols"].tolist()]


def load_or_build(symbols: Sequence[str], cfg: WalkForwardConfig, *,
                  history_dir: str | None = None, cache_dir: str | Path | None = None,
                  log: Callable[[str], None] = lambda s: None) -> list[OOSData]:
    """Cached OOS data for ``symbols`` (built from the history files when not cached)."""
    path = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        path = Path(cache_dir) / f"rl_oos_{cache_key(symbols, cfg, history_dir)}.npz"
        if path.is_file():
            log(f"OOS data from cache {path}")
            return load(path)
    log(f"building OOS signals (walk-forward, {len(symbols)} instruments)...")
    data = build_oos(load_history(symbols, history_dir), cfg)
    if path is not None:
        save(path, data)
    return data
