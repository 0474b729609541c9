"""Figures of the benchmarks: :class:`Figure` (one number, judged against its target) and, per
bench, the function that reads that bench's JSON into figures (``figs_<bench>``)."""

from __future__ import annotations

from dataclasses import dataclass, field

OPS = {"<=": "≤", "<": "<", ">=": "≥"}


@dataclass
class Figure:
    """One number of one bench; ``target`` is ``(op, threshold)`` with op in <=, <, >=."""

    bench: str
    name: str
    value: float | None
    unit: str
    target: tuple[str, float] | None = None
    note: str = ""
    status: str = field(default="")

    def __post_init__(self) -> None:
        if self.status:
            return
        if self.target is None:
            self.status = "" if self.value is not None else "no data"
        elif self.value is None:
            self.status = "no data"
        else:
            op, x = self.target
            ok = {"<=": self.value <= x, "<": self.value < x, ">=": self.value >= x}[op]
            self.status = "met" if ok else "missed"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        op, x = self.target
        return f"{OPS[op]} {x:,g} {self.unit}".strip()


def figs_bus(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("bus", *a, **k)
    return [
        f("raw redis-py XADD→XREADGROUP hop p50", d["raw_hop_p50_ms"], "ms"),
        f("raw redis-py XADD→XREADGROUP hop p99", d["raw_hop_p99_ms"], "ms"),
        f("bus hop publish→handler p50", d["bus_hop_p50_ms"], "ms"),
        f("bus hop publish→handler p99", d["bus_hop_p99_ms"], "ms"),
        f("bus hop publish→committed (ack) p50", d["bus_hop_committed_p50_ms"], "ms"),
        f("bus hop overhead over raw, p50", d["bus_hop_p50_ms"] - d["raw_hop_p50_ms"], "ms"),
        f("bus hop overhead over raw, p99", d["bus_hop_p99_ms"] - d["raw_hop_p99_ms"], "ms"),
        f("bus/raw hop ratio p50", d["ratio_p50"], "×", ("<=", 1.5)),
        f("bus/raw hop ratio p99", d["ratio_p99"], "×", ("<=", 1.5)),
        f("raw sustained throughput", d["raw_sustained_msgs_per_s"], "msg/s"),
        f("bus sustained throughput", d["bus_sustained_msgs_per_s"], "msg/s"),
        f("signing cost per event (HMAC-SHA256 sign) p50", d["sign_p50_us"], "µs"),
        f("verifying cost per event p50", d["verify_p50_us"], "µs"),
        f("signed bus hop publish→handler p50", d["signed_hop_p50_ms"], "ms"),
        f("signed bus hop publish→handler p99", d["signed_hop_p99_ms"], "ms"),
        f("signed bus sustained throughput", d["signed_sustained_msgs_per_s"], "msg/s"),
    ]


def figs_ingest(d: dict) -> list[Figure]:
    note = f"{d['ingest_lockstep_steps']} bar times"
    return [Figure("ingest", "ingest-only lockstep replay", d["ingest_lockstep_secs"], "s", note=note),
            Figure("ingest", "ingest-only lockstep throughput", d["ingest_lockstep_bars_per_s"], "bars/s"),
            Figure("ingest", "ingest-only lockstep time per bar time", d["ingest_lockstep_ms_per_step"], "ms")]


def figs_features(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("features", *a, **k)
    out = []
    for key, label in (("incremental_update", "IncrementalFeatures.update"),
                       ("garch_update", "GarchFilter.update"), ("regime_update", "RegimeFilter.update")):
        out += [f(f"{label} p50", d[key]["p50_us"], "µs"), f(f"{label} p99", d[key]["p99_us"], "µs")]
    return out + [f(f"compute_batch ({d['bars']} bars)", d["compute_batch_ms"], "ms")]


def figs_signal(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("signal", *a, **k)
    fast, xgb = d["numpy tree walk (default)"], d["xgboost inplace_predict"]
    note = d.get("model", "")
    return [
        f("inference p50 (numpy tree walk, default)", fast["inference"]["p50_us"], "µs", note=note),
        f("inference p99 (numpy tree walk, default)", fast["inference"]["p99_us"], "µs"),
        f("features+inference p50", fast["features+inference"]["p50_us"], "µs", ("<=", 300)),
        f("features+inference p99", fast["features+inference"]["p99_us"], "µs", ("<=", 1000)),
        f("on_bar p50", fast["on_bar"]["p50_us"], "µs"),
        f("on_bar p99", fast["on_bar"]["p99_us"], "µs"),
        f("inference p50 (xgboost inplace_predict)", xgb["inference"]["p50_us"], "µs"),
        f("inference p99 (xgboost inplace_predict)", xgb["inference"]["p99_us"], "µs"),
    ]


def figs_sizer(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("sizer", *a, **k)
    lat = d["latency"]
    out = []
    for key, label in (("engine_decision", "sizing decision (engine)"),
                       ("handler_signal_event", "sizing decision (handler, event in → out)"),
                       ("numpy_actor", "SAC actor forward (numpy)")):
        out += [f(f"{label} p50", lat[key]["p50_us"], "µs"), f(f"{label} p99", lat[key]["p99_us"], "µs")]
    if "training" in d:
        gate = d.get("gate", {})
        out.append(f("SAC training (full curriculum) wall", d["training"]["wall_s"], "s", ("<=", 600),
                     note=f"{d['training']['steps']} steps; gate {'passed' if gate.get('passed') else 'failed'}"))
        out.append(f("OOS signals for RL (walk-forward, cached)", d["oos"]["wall_s"], "s",
                     note="0 when read from the cache"))
    else:
        out[0].note = "random policy (--skip-train)"
    return out


def figs_risk(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("risk", *a, **k)
    out = []
    for key in ("decide", "decide after bar", "decide + snapshot", "consumer hop"):
        out += [f(f"{key} p50", d[key]["p50_us"], "µs"), f(f"{key} p99", d[key]["p99_us"], "µs")]
    return out


def figs_executor(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("executor", *a, **k)
    return [f("pybit place_order → sim round trip p50", d["place_order_p50_ms"], "ms"),
            f("pybit place_order → sim round trip p99", d["place_order_p99_ms"], "ms"),
            f("intent published → OrderReported p50", d["round_trip_p50_ms"], "ms"),
            f("intent published → OrderReported p99", d["round_trip_p99_ms"], "ms")]


def figs_backtest(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("backtest", *a, **k)
    w = "full history" if d["window"] == "full" else f"last {d['window']} days"
    return [f("in-process backtest throughput", d["bars_per_s"], "bars/s", (">=", 5000),
              note=f"{w}, {d['bars']} bars, {d['seconds']:.1f} s incl. {d['setup_s']:.1f} s setup"),
            f("in-process backtest throughput, replay only", d["bars_per_s_replay"], "bars/s",
              note="setup (model load, venue) excluded"),
            *[f(f"profile: {stage} per bar time, all handlers", ms, "ms",
                note="tm_common.bus.stages")
              for stage, ms in _stage_totals(d.get("stage_ms_per_bar_time") or {}).items()]]


def figs_mesh(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("mesh", *a, **k)
    full = d["window"] == "full"
    w = "full history" if full else f"last {d['window']} days"
    lat = d["latency_ms"]
    ack = lat["bar→order acknowledged"]
    n_note = f"{ack['n']} orders, {w}"
    out = []
    if full:
        out.append(f("lockstep replay, full history", d["replay_s"], "s", ("<=", 30),
                     note=f"{d['bar_times']} bar times × 3 instruments"))
    else:
        out.append(f(f"lockstep replay, {w}", d["replay_s"], "s",
                     note=f"{d['bar_times']} bar times × 3 instruments"))
        out.append(f("lockstep replay, full history (extrapolated)",
                     d["full_history_replay_s_extrapolated"], "s", ("<=", 30),
                     note=f"{d['full_history_bar_times']} bar times at the measured ms per bar time"))
    out += [f("lockstep time per bar time", d["ms_per_bar_time"], "ms"),
            f("bar close → order acknowledged p50", ack["p50"], "ms", ("<=", 5), note=n_note),
            f("bar close → order acknowledged p99", ack["p99"], "ms", ("<=", 10)),
            f("bar close → order acknowledged p99 (design claim)", ack["p99"], "ms", ("<", 50))]
    for hop in ("bar→signal", "bar→sized", "bar→order approved"):
        out += [f(f"{hop} p50", lat[hop]["p50"], "ms"), f(f"{hop} p99", lat[hop]["p99"], "ms")]
    raw = d.get("raw_hop_p50_ms")
    if raw:
        # the verdicts that a loaded machine does not decide: ratios to the raw Redis hop
        # measured in the same run (issue 17: ≤ 20×, ≤ 40×, ≤ 4 ms / 0.246 ms ≈ 16×)
        ratio = lambda v: None if v is None else v / raw
        out += [f("raw redis-py hop p50 in this run", raw, "ms"),
                f("bar close → order acknowledged p50 / raw hop p50", ratio(ack["p50"]), "×",
                  ("<=", 20)),
                f("bar close → order acknowledged p99 / raw hop p50", ratio(ack["p99"]), "×",
                  ("<=", 40)),
                f("lockstep time per bar time / raw hop p50", ratio(d["ms_per_bar_time"]), "×",
                  ("<=", 16))]
    for stage, ms in _stage_totals(d.get("stage_ms_per_bar_time") or {}).items():
        out.append(f(f"profile: {stage} per bar time, all services", ms, "ms",
                     note="tm_common.bus.stages; read includes a blocking read's wait"))
    cpu = d.get("cpu_ms_per_bar_time") or {}
    if cpu:
        # what the lockstep is bound by on 2 cores: CPU per bar time over every process
        out += [f("CPU per bar time, all processes and Redis", cpu.get("all"), "ms",
                  note=f"cores busy on average {d.get('cores_busy')} of {d.get('machine_start', {}).get('cpu_count')}"),
                f("venue time per bar time (the executor waiting)", d.get("venue_ms_per_bar_time"),
                  "ms")]
    for name, mib in d["peak_rss_mib"].items():
        # issue 17's memory budgets: the signal service 150 MiB, every other process 120 MiB
        out.append(f(f"peak RSS {name}", mib, "MiB", ("<=", 150 if name == "signal" else 120),
                     note="VmHWM"))
    if "ingest" not in d["peak_rss_mib"]:
        out.append(f("peak RSS ingest", None, "MiB", note="not reachable in this run"))
    return out


def _stage_totals(per_group: dict[str, dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for stages in per_group.values():
        for k, v in stages.items():
            out[k] = out.get(k, 0.0) + v
    return out


def figs_main(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("main", *a, **k)
    return [f("tm demo --fast-train, wall time", d["wall_s"], "s", note=d["command"]),
            f("tm demo, total seconds as reported", d["total_s_reported"], "s"),
            f("tm demo, replay seconds", d["replay_s"], "s")]


def figs_training(d: dict) -> list[Figure]:
    note = f"{d.get('n_windows', '?')} walk-forward windows; gate {'passed' if d['gate_passed'] else 'failed'}"
    if d.get("fast"):
        return [Figure("training", "walk-forward training (--fast, smoke)", d["wall_s"], "s", note=note)]
    return [Figure("training", "walk-forward training, 3 instruments", d["wall_s"], "s", ("<=", 300),
                   note=note),
            Figure("training", "walk-forward training, CPU", d["cpu_s"], "s")]


def figs_journal(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("journal", *a, **k)
    days = f"{d['days']} days, {d['entries']} inputs"
    return [f("journaled venue input p50 (engine + line + fsync)", d["input_us"]["p50"], "µs"),
            f("journaled venue input p99", d["input_us"]["p99"], "µs"),
            f("venue restart from its journal", d["restart_s"], "s", note=days),
            f("venue journal size", d["journal_mb"], "MB", note=days)]


def figs_image(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("image", *a, **k)
    return [f("runtime image (runtime dependencies installed in a fresh venv)", d["venv_mb"], "MB",
              ("<=", d.get("limit_mb", 600)), note=f"site-packages {d['site_packages_mb']:.0f} MB"),
            f("runtime venv install time", d["install_s"], "s")]
