"""Helpers shared by the benches that run the whole system (``bench_mesh``, ``bench_backtest``,
``bench_main``) and by ``run_all``: machine facts, percentiles, history window, a throwaway model
registry, and the summary-and-JSON ending of the benches (:func:`report`). Imported as
``_benchlib`` (the benches run as ``python bench/<name>.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
BAR_MS = 4 * 3600_000
DAY_MS = 86_400_000
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# Benchmark configuration, not the shipped defaults: the fast-trained signal model is put in
# production even where its gates refuse it, and the cascade thresholds are lowered (as in the
# mesh/backtest parity test), so that the window trades and order latencies can be measured.
# The sizer's own prefix (TM_SIZER_*, as the parity test sets them): the unprefixed names of an
# older settings layout are read by nothing, and the benches' windows then never traded.
TRADING_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.02", "TM_SIZER_BLENDED_CONFIDENCE": "0.08",
               "TM_SIZER_KELLY_MIN_EACH": "1", "TM_SIZER_KELLY_PRIOR_B": "1.5",
               "TM_LOG_LEVEL": "WARNING"}


def machine() -> dict:
    """CPU count, 1/5/15-minute load average, Python and platform."""
    return {"cpu_count": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "platform": platform.platform()}


def pct(values, unit_scale: float = 1.0) -> dict:
    """``{"n", "p50", "p99", "max"}`` of ``values`` × ``unit_scale`` (NaNs when empty)."""
    a = np.asarray(list(values), dtype=np.float64) * unit_scale
    if a.size == 0:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def write_json(path: str | Path | None, doc: dict) -> None:
    if not path:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=2, default=str))


def report(path: str | Path | None, res: dict, *lines: str) -> None:
    """A bench's ending: print its summary ``lines``, then the load average at start and end
    when ``res`` has ``machine_start`` and ``machine_end`` (:func:`machine`), then write ``res``
    to ``path`` (:func:`write_json`; nothing without a path)."""
    for line in lines:
        print(line)
    if "machine_start" in res and "machine_end" in res:
        print(f"  load average start {res['machine_start']['loadavg']}, "
              f"end {res['machine_end']['loadavg']}")
    write_json(path, res)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``TM_`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(extra)
    return env


def history_span() -> tuple[int, int]:
    """(first, last) bar open time (ms) common to every shipped instrument."""
    from tm_common.history import load_bars

    per = [load_bars(s) for s in SYMBOLS]
    return max(b[0].open_time_ms for b in per), min(b[-1].open_time_ms for b in per)


def window(spec: str | int | None) -> tuple[int, int]:
    """``"full"``/``None`` = the whole shipped history; a number of days = the last N days of it.
    Returns (start_ms, end_ms), bar open times, inclusive."""
    first, last = history_span()
    if spec is None or str(spec) == "full":
        return first, last
    days = float(spec)
    if days <= 0:
        raise ValueError(f"window must be 'full' or a positive number of days, got {spec!r}")
    return max(first, last - int(days * DAY_MS) + BAR_MS), last


def bar_times(start_ms: int, end_ms: int) -> int:
    """Distinct bar open times of the shipped history in [start_ms, end_ms]."""
    from tm_common.history import load_bars

    return len({b.open_time_ms for s in SYMBOLS for b in load_bars(s, start_ms, end_ms)})


def stage_table(stages: dict[str, dict[str, int]], per: int, per_name: str) -> list[str]:
    """Lines of the hot path's profile: per consumer group, ms per ``per_name`` in each stage
    (``tm_common.bus.stages``), then the total of every group."""
    from tm_common.bus.stages import STAGES, merge

    rows = [*sorted(stages.items()), ("all", merge(list(stages.values())))]
    head = "  " + f"{'stage ms/' + per_name:22s}" + "".join(f"{s:>9s}" for s in STAGES) + \
        f"{'entries':>9s}{'state w/skip':>14s}"
    out = [head]
    for name, d in rows:
        cells = "".join(f"{d.get(s, 0) / 1e6 / max(per, 1):9.3f}" for s in STAGES)
        out.append(f"  {name:22s}{cells}{d.get('entries', 0):9d}"
                   f"{d.get('state_writes', 0):>8d}/{d.get('state_skips', 0)}")
    return out


def stage_ms(stages: dict[str, dict[str, int]], per: int) -> dict[str, dict[str, float]]:
    """``{group: {stage: ms per unit}}`` for the JSON results."""
    from tm_common.bus.stages import STAGES

    return {g: {s: d.get(s, 0) / 1e6 / max(per, 1) for s in STAGES} for g, d in stages.items()}


def train_models(workdir: Path, *, force_promote: bool = True, log=print) -> str:
    """``python -m tm_trainer --no-publish --fast`` into ``workdir/models.db``; returns its URL.

    With ``force_promote`` the newest signal candidate is put in production if the gates
    refused it (benchmark registry only)."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{workdir / 'models.db'}"
    cached = os.environ.get("TM_BENCH_MODELS_DB")
    if cached:
        # a registry trained earlier (repeated measurements): copied, so a run never changes it
        import shutil
        shutil.copyfile(cached, workdir / "models.db")
        log(f"models: copied from TM_BENCH_MODELS_DB={cached}")
        return url
    cmd = [sys.executable, "-m", "tm_trainer", "--no-publish", "--fast", "--no-progress"]
    p = subprocess.run(cmd, env=clean_env(TM_DATABASE_URL=url, TM_DATA_DIR=str(workdir / ".tm")),
                       cwd=workdir, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError("training failed: " + (p.stderr or p.stdout)[-1500:])
    if force_promote:
        version = asyncio.run(_force_signal_model(url))
        if version:
            log(f"models: promoted {version} for the benchmark (its gates refused it)")
    return url


async def _force_signal_model(db_url: str) -> str | None:
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry

    engine = make_engine(db_url)
    try:
        reg = ModelRegistry(engine)
        if await reg.production("signal") is not None:
            return None
        cand = list(await reg.list("signal"))
        if not cand:
            raise RuntimeError("training registered no signal model")
        await reg.promote(cand[-1].version, "benchmark: exercise trading")
        return cand[-1].version
    finally:
        await engine.dispose()


def vm_hwm_kib(pid: int | None) -> int | None:
    """Peak resident set size (``VmHWM``, KiB) of a live process, or ``None``."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) a live process has used, or ``None``."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # the command name may hold spaces: the fields after its closing parenthesis
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from ``/proc/stat``: the share
    of the cores in use between two readings is d(busy) / d(total)."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)          # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(v) - idle) / tick, sum(v) / tick


def redis_cpu_s(url: str) -> float | None:
    """CPU seconds the Redis server at ``url`` has used (``INFO cpu``), or ``None``."""
    import redis
    try:
        info = redis.Redis.from_url(url).info("cpu")
    except redis.RedisError:
        return None
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _endpoint_series(text: str) -> tuple[dict[str, float], dict[str, float]]:
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        for suffix, into in (("_sum", sums), ("_count", counts)):
            head = f"tm_executor_exchange_latency_seconds{suffix}{{endpoint=\""
            if line.startswith(head):
                name, _, value = line[len(head):].partition('"} ')
                into[name] = float(value)
    return sums, counts


def endpoint_means_ms(text: str) -> dict[str, float]:
    """Mean venue call time per endpoint (ms), from the executor's latency histogram in its
    ``/metrics`` text."""
    sums, counts = _endpoint_series(text)
    return {k: round(sums[k] / counts[k] * 1e3, 2) for k in sorted(sums) if counts.get(k)}


def endpoint_counts(text: str) -> dict[str, int]:
    """Venue calls per endpoint, from the same histogram."""
    return {k: int(v) for k, v in sorted(_endpoint_series(text)[1].items())}
