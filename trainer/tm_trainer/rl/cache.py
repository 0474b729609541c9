"""OOS data on disk: the walk-forward takes ~45 s for three instruments, so its result is kept
in ``<cache_dir>/rl_oos_<key>.npz`` (plain arrays, ``allow_pickle=False``). The key hashes the
walk-forward settings, the symbols and the data: the bytes of the history files (``--source
files``) or the data hash of the rows read from the database (``--source db``,
:meth:`~tm_trainer.data.RawInputs.data_hash`), so any change, new bars included, rebuilds."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
from tm_common.files import replace_file

from tm_trainer.data import RawInputs
from tm_trainer.rl.inputs import history_of
from tm_trainer.rl.oos import OOSData, WalkForwardConfig, build_oos, load_history


def _settings(symbols: Sequence[str], cfg: WalkForwardConfig) -> bytes:
    return json.dumps({"cfg": asdict(cfg), "symbols": list(symbols)}, sort_keys=True).encode()


def cache_key(symbols: Sequence[str], cfg: WalkForwardConfig, history_dir: str | None) -> str:
    """Key of the OOS data built from the history files in ``history_dir``."""
    from tm_common import history as files

    h = hashlib.sha256(_settings(symbols, cfg))
    paths = [files.dvol_file("BTC", history_dir)]
    for s in symbols:
        paths += [files.bars_file(s, history_dir), files.funding_file(s, history_dir)]
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes() if p.is_file() else b"-")
    return h.hexdigest()[:16]


def db_cache_key(symbols: Sequence[str], cfg: WalkForwardConfig, data_hash: str) -> str:
    """Key of the OOS data built from database rows whose data hash is ``data_hash``."""
    h = hashlib.sha256(_settings(symbols, cfg))
    h.update(f"db:{data_hash}".encode())
    return h.hexdigest()[:16]


def key_for(symbols: Sequence[str], cfg: WalkForwardConfig, history_dir: str | None,
            inputs: RawInputs | None) -> str:
    """:func:`db_cache_key` for database inputs, else :func:`cache_key` (the files' bytes)."""
    if inputs is not None and inputs.source == "db":
        return db_cache_key(symbols, cfg, inputs.data_hash())
    return cache_key(symbols, cfg, history_dir)


def save(path: Path, data: Sequence[OOSData]) -> None:
    arrays: dict[str, Any] = {f"{d.instrument}__{k}": v for d in data for k, v in d.arrays().items()}
    arrays["__symbols"] = np.array([d.instrument for d in data])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    replace_file(path, buf.getvalue())


def load(path: Path) -> list[OOSData]:
    names = [f.name for f in fields(OOSData) if f.name != "instrument"]
    with np.load(path, allow_pickle=False) as z:
        return [OOSData(str(s), **{k: z[f"{s}__{k}"] for k in names})
                for s in z["__symbols"].tolist()]


def load_or_build(symbols: Sequence[str], cfg: WalkForwardConfig, *,
                  history_dir: str | None = None, cache_dir: str | Path | None = None,
                  log: Callable[[str], None] = lambda s: None,
                  inputs: RawInputs | None = None) -> list[OOSData]:
    """Cached OOS data for ``symbols``, built when not cached from ``inputs`` (the symbols' rows,
    :mod:`tm_trainer.rl.inputs`) or, when None, from the history files in ``history_dir``."""
    path = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        path = Path(cache_dir) / f"rl_oos_{key_for(symbols, cfg, history_dir, inputs)}.npz"
        if path.is_file():
            log(f"OOS data from cache {path}")
            return load(path)
    log(f"building OOS signals (walk-forward, {len(symbols)} instruments)...")
    history = load_history(symbols, history_dir) if inputs is None else history_of(inputs)
    data = build_oos(history, cfg)
    if path is not None:
        save(path, data)
    return data
