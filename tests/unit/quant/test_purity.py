"""tm_quant stays pure: no I/O library is imported, no file or network access in its source."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import tm_quant
from tm_quant.features import WARMUP_BARS, Bar, IncrementalFeatures, compute_batch

PKG = Path(tm_quant.__file__).parent
IO_MODULES = ("redis", "httpx", "sqlalchemy", "fastapi", "requests", "aiohttp", "asyncpg", "pybit",
              "websockets", "tm_common")


def test_importing_tm_quant_loads_no_io_library():
    code = ("import sys, tm_quant.features, tm_quant.garch, tm_quant.labels, tm_quant.regime, "
            "tm_quant.leakage, tm_quant.families; print(','.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.strip().split(","))
    assert not {m for m in loaded if m.split(".")[0] in IO_MODULES}


def test_source_has_no_io_calls():
    pattern = re.compile(r"^\s*(import|from)\s+(os|io|pathlib|socket|pickle|shutil|" +
                         "|".join(IO_MODULES) + r")\b|\bopen\(|\bpickle\b", re.M)
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_short_histories_are_all_warm_up():
    for n in (0, 1, 5, 60):
        c = np.linspace(100, 110, n)
        bars = {"timestamp": np.arange(n) * 14_400_000, "open": c, "high": c * 1.01, "low": c * 0.99,
                "close": c, "volume": np.ones(n)}
        X, _ = compute_batch(bars, btc_bars=bars)
        assert X.shape[0] == n and np.isnan(X).all()
        inc = IncrementalFeatures()
        assert all(inc.update(Bar(*row)) is None for row in zip(*bars.values()))
    assert WARMUP_BARS > 60
