"""Mesh lockstep replay: every service as its own process, ingest replaying the shipped history of
three instruments bar time by bar time against the exchange sim (``tm_app.mesh.run_mesh``).

Figures: replay seconds for the window (target <= 30 s for the full history; for a shorter window
the full-history time is also extrapolated from ms per bar time), latency from bar publication to
each hop (bar close → order acknowledged by the venue: target p50 <= 5 ms, p99 <= 10 ms; the
design claims < 50 ms), and the peak RSS (VmHWM) of every service process.

Benchmark configuration: models trained with ``python -m tm_trainer --no-publish --fast`` into a
throwaway SQLite registry, the signal candidate put in production even if its gates refuse it,
and lowered cascade thresholds, so that the window trades (see ``_benchlib.TRADING_ENV``).

Usage: ``python bench/bench_mesh.py [--window full|DAYS] [--port-offset 500] [--json PATH]``.
Redis: ``TM_BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/0), under a throwaway namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import _benchlib as lib

HOPS = ("bar→regime", "bar→signal", "bar→sized", "bar→order approved", "bar→order acknowledged",
        "bar→fill")


class RssWatch:
    """Peak RSS and CPU time per process. CPU is counted from the first tick that sees a bar
    published to the end of the replay (start-up and model loading left out), for every service
    process, ingest, the Redis server and the whole machine (the share of the cores in use):
    the lockstep's floor on 2 cores is the CPU one bar time costs, spread over the cores.
    Peak RSS per process. The pipeline's processes are read in ``before_stop``; ingest runs
    under its own supervisor inside ``run_mesh``, stopped before ``before_stop``, so it is read on
    every tick while it runs (its pid from that supervisor's state file; VmHWM only grows, so the
    last reading, taken at the tick that sees the replay done, is its peak within ~0.5 s)."""

    def __init__(self, data_dir: Path, redis_url: str) -> None:
        self.state_file = data_dir / "mesh-ingest.json"
        self.redis_url = redis_url
        self.kib: dict[str, int] = {}
        self.pids: dict[str, int] = {}
        self.stages: dict[str, dict[str, int]] = {}
        self.cpu0: dict[str, float] = {}        # CPU seconds when the replay started
        self.cpu1: dict[str, float] = {}        # ... and at its end (ingest: its last tick)
        self.busy0: tuple[float, float] | None = None
        self.busy1: tuple[float, float] | None = None
        self.published0 = 0
        self.venue_calls: dict[str, int] = {}
        self.venue_ms: dict[str, float] = {}

    def _cpu(self, name: str, pid: int | None, end: bool) -> None:
        v = lib.cpu_s(pid)
        if v is not None:
            (self.cpu1 if end else self.cpu0)[name] = v

    def _read(self, name: str, pid: int | None) -> None:
        v = lib.vm_hwm_kib(pid)
        if v is not None:
            self.kib[name] = max(v, self.kib.get(name, 0) if self.pids.get(name) == pid else 0)
            self.pids[name] = pid

    def on_tick(self, sup, extra: dict) -> None:
        ingest = None
        try:
            doc = json.loads(self.state_file.read_text())
            ingest = doc["processes"]["ingest"]["pid"]
            self._read("ingest", ingest)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        published = int((extra or {}).get("published", 0) or 0)
        if self.busy0 is None and published:
            self.busy0, self.published0 = lib.machine_busy(), published
            for name, p in sup.procs.items():
                self._cpu(name, p.pid, end=False)
            self._cpu("ingest", ingest, end=False)
            redis = lib.redis_cpu_s(self.redis_url)
            if redis is not None:
                self.cpu0["redis"] = redis
        elif self.busy0 is not None:
            self._cpu("ingest", ingest, end=True)

    def before_stop(self, sup) -> None:
        self.busy1 = lib.machine_busy()
        redis = lib.redis_cpu_s(self.redis_url)
        if redis is not None:
            self.cpu1["redis"] = redis
        for name, p in sup.procs.items():
            self._read(name, p.pid)
            self._cpu(name, p.pid, end=True)
            self._stages(name, p.spec.port)

    def cpu_ms(self, bar_times: int) -> dict[str, float]:
        """CPU ms per bar time of each process over the replay (``all``: their sum)."""
        if bar_times <= 0:
            return {}
        out = {k: round((self.cpu1[k] - self.cpu0[k]) * 1e3 / bar_times, 2)
               for k in sorted(self.cpu0) if k in self.cpu1}
        out["all"] = round(sum(out.values()), 2)
        return out

    def cores_busy(self) -> float | None:
        """How many cores were busy on average over the replay (whole machine)."""
        if self.busy0 is None or self.busy1 is None or self.busy1[1] <= self.busy0[1]:
            return None
        n = os.cpu_count() or 1
        return round(n * (self.busy1[0] - self.busy0[0]) / (self.busy1[1] - self.busy0[1]), 2)

    def _stages(self, name: str, port: int | None) -> None:
        """The service's hot-path profile from its ``/status`` (``stages`` per group)."""
        if port is None:
            return
        import httpx
        try:
            doc = httpx.get(f"http://127.0.0.1:{port}/status", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return
        for group, st in (doc.get("stages") or {}).items():
            self.stages[group] = st
        if name == "executor":        # the venue's share: calls by endpoint and their mean time
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=3).text
            except httpx.HTTPError:
                return
            self.venue_calls = lib.endpoint_counts(text)
            self.venue_ms = lib.endpoint_means_ms(text)

    def mib(self) -> dict[str, float]:
        return {k: round(v / 1024, 1) for k, v in sorted(self.kib.items())}


class Progress:
    def __init__(self, total_bars: int, every_s: float = 10.0) -> None:
        self.total, self.every, self.t0, self.last = total_bars, every_s, None, 0.0

    def __call__(self, published: int, _total: int) -> None:
        now = time.monotonic()
        if self.t0 is None and published:
            self.t0 = now
        if now - self.last < self.every or not published or now - self.t0 < 1:
            return
        self.last = now
        rate = published / (now - self.t0)
        print(f"  mesh replay: {published}/{self.total} bars ({published / self.total:.0%}), "
              f"{rate:.0f} bars/s, ETA {(self.total - published) / rate:.0f} s, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)


def run(window: str, port_offset: int, redis_url: str, replay_timeout_s: float) -> dict:
    from tm_app.backtest import RunConfig
    from tm_app.mesh import run_mesh
    from tm_common.bus.streams import MD_BAR, PORTFOLIO_SNAPSHOT
    from tm_common.testing.redis import delete_namespace

    start_ms, end_ms = lib.window(window)
    steps = lib.bar_times(start_ms, end_ms)
    full_steps = lib.bar_times(*lib.window("full"))
    out: dict = {"window": window, "start_ms": start_ms, "end_ms": end_ms, "bar_times": steps,
                 "full_history_bar_times": full_steps, "port_offset": port_offset,
                 "machine_start": lib.machine()}
    with tempfile.TemporaryDirectory(prefix="bench-mesh-") as tmp:
        tmp = Path(tmp)
        t = time.monotonic()
        db_url = lib.train_models(tmp)
        out["train_s"] = time.monotonic() - t
        print(f"models trained in {out['train_s']:.1f} s; replaying {steps} bar times "
              f"x {len(lib.SYMBOLS)} instruments through the mesh", flush=True)
        cfg = RunConfig(start_ms=start_ms, end_ms=end_ms, database_url=db_url,
                        extra_env=dict(lib.TRADING_ENV))
        rss = RssWatch(tmp / "mesh", redis_url)
        namespace = f"tmbench:{uuid.uuid4().hex[:8]}:"
        t = time.monotonic()
        try:
            run_ = run_mesh(cfg, redis_url=redis_url, data_dir=tmp / "mesh", port_offset=port_offset,
                            log=lambda m: print(m, flush=True), namespace=namespace,
                            progress=Progress(steps * len(lib.SYMBOLS)),
                            replay_timeout_s=replay_timeout_s, on_tick=rss.on_tick,
                            before_stop=rss.before_stop)
        finally:
            delete_namespace(redis_url, namespace)
        out["total_s"] = time.monotonic() - t
    # The floor, on the same Redis in the same run: the targets are ratios to it (issue 17)
    import bench_bus
    raw = bench_bus.measure("raw", 300, 1000.0)
    out["raw_hop_p50_ms"], out["raw_hop_p99_ms"] = raw["p50_ms"], raw["p99_ms"]
    rec = run_.record
    bars = rec.of(MD_BAR, "bar.closed")
    snaps = rec.of(PORTFOLIO_SNAPSHOT)
    span_s = ((snaps[-1].ts_init_ns - bars[0].ts_init_ns) / 1e9) if bars and snaps else None
    lat = rec.latencies_ms()
    out.update({
        "replay_s": run_.secs,
        "replay_span_s": span_s,
        "ms_per_bar_time": run_.secs / steps * 1e3,
        "full_history_replay_s_extrapolated": run_.secs / steps * full_steps,
        "latency_ms": {k: lib.pct(lat.get(k, [])) for k in HOPS},
        "counts": {"bars": len(rec.bars), "signals": len(rec.signals), "orders": len(rec.orders),
                   "fills": len(rec.fills), "snapshots": len(rec.snapshots)},
        "dead_letters": {k: v for k, v in rec.dead_letters.items() if v},
        "restarts": run_.restarts,
        "peak_rss_mib": rss.mib(),
        "stages": rss.stages, "stage_ms_per_bar_time": lib.stage_ms(rss.stages, steps),
        "cpu_ms_per_bar_time": rss.cpu_ms(steps - rss.published0 // len(lib.SYMBOLS)),
        "cores_busy": rss.cores_busy(),
        "venue_calls_per_bar_time": {k: round(v / steps, 2) for k, v in sorted(rss.venue_calls.items())},
        "venue_call_mean_ms": rss.venue_ms,
        "venue_ms_per_bar_time": round(sum(v / steps * rss.venue_ms.get(k, 0.0)
                                           for k, v in rss.venue_calls.items()), 2),
        "machine_end": lib.machine(),
    })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", default="full", help="'full' (default) or the last N days")
    ap.add_argument("--port-offset", type=int, default=500)
    ap.add_argument("--replay-timeout-s", type=float, default=4 * 3600)
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args()
    # run_all's timeout sends SIGTERM: exit through the finally blocks that stop the processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    url = os.environ.get("TM_BENCH_REDIS_URL", lib.DEFAULT_REDIS_URL)
    res = run(args.window, args.port_offset, url, args.replay_timeout_s)
    latency = [f"  {k:24s} p50 {v['p50']:8.2f} ms   p99 {v['p99']:8.2f} ms   n {v['n']}" if v["n"]
               else f"  {k:24s} no events" for k, v in res["latency_ms"].items()]
    lib.report(
        args.json, res,
        f"mesh lockstep replay, window {args.window} ({res['bar_times']} bar times x "
        f"{len(lib.SYMBOLS)} instruments): {res['replay_s']:.1f} s, "
        f"{res['ms_per_bar_time']:.1f} ms per bar time; full history ({res['full_history_bar_times']} "
        f"bar times) {'measured' if args.window == 'full' else 'extrapolated'}: "
        f"{res['full_history_replay_s_extrapolated']:.1f} s (target <= 30 s)",
        f"  counts {res['counts']}, restarts {res['restarts']}, dead letters {res['dead_letters']}",
        *latency, f"  raw redis-py XADD→XREADGROUP hop in this run: p50 {res['raw_hop_p50_ms']:.3f} ms, "
        f"p99 {res['raw_hop_p99_ms']:.3f} ms; per bar time {res['ms_per_bar_time'] / res['raw_hop_p50_ms']:.0f}"
        "x the raw hop p50 (target <= 16x, 4 ms / 0.246 ms)",
        f"  peak RSS (MiB): {res['peak_rss_mib']}",
        f"  CPU ms per bar time, per process over the replay: {res['cpu_ms_per_bar_time']}; "
        f"cores busy on average: {res['cores_busy']} of {os.cpu_count()}",
        f"  venue calls per bar time {res['venue_calls_per_bar_time']}, mean ms per call "
        f"{res['venue_call_mean_ms']}: {res['venue_ms_per_bar_time']} ms per bar time in the "
        "executor waiting for the venue",
        f"  where one bar time ({res['ms_per_bar_time']:.1f} ms) goes, per service (ms of its "
        "process; 'wait' = idle reads, the rest of the bar time is Redis, scheduling on the "
        "cores and the lockstep probe's polling):",
        *lib.stage_table(res["stages"], res["bar_times"], "bar time"))


if __name__ == "__main__":
    main()
