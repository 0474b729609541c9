"""A candidate's evidence for promotion: its walk-forward record (the trainer's metrics) and its
shadow record (what it did when run in a shadow book next to production).

A shadow book (``tm shadow``, :mod:`tm_app.shadow`) writes one :class:`ShadowRecord` per run into
the candidate's registry row (``metrics["_shadow"][run_id]``), refreshed as the run goes. Only
*forward* runs count as evidence: ``paper`` and ``live`` mode saw prices that did not exist when
the model was made. Such a run's record covers only the bars that opened at or after the
candidate's registration (the book trades the earlier ones too, e.g. a paper run's warm-up, but
they existed when the candidate was chosen). A ``replay`` run (the demo's) is out of sample too,
but it replays history that an operator could have looked at while choosing the gates, so it is
shown, never counted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

SHADOW_KEY = "_shadow"
FORWARD_MODES = ("paper", "live")
SHADOW_MODES = ("replay", "paper", "live")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class ShadowRecord:
    """One shadow run of a candidate: the bar window it traded and how it did."""

    run_id: str
    mode: str                       # replay | paper | live
    first_bar_ms: int
    last_bar_ms: int
    bars: int                       # bar times processed
    total_return: float
    sharpe: float
    max_drawdown: float
    ic: float                       # realised Spearman IC of P(up) vs the forward return
    orders: int
    updated_at_ms: int

    def __post_init__(self) -> None:
        if self.mode not in SHADOW_MODES:
            raise ValueError(f"shadow mode must be one of {', '.join(SHADOW_MODES)}, "
                             f"got {self.mode!r}")

    @property
    def days(self) -> float:
        """Bar-time span of the run, in days (0 before the second bar)."""
        return max(0, self.last_bar_ms - self.first_bar_ms) / DAY_MS

    @property
    def forward(self) -> bool:
        return self.mode in FORWARD_MODES

    def to_json(self) -> dict[str, Any]:
        """JSON-safe (NaN → None: the registry's JSON column holds no NaN)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ShadowRecord:
        nan = float("nan")
        return cls(run_id=str(d["run_id"]), mode=str(d["mode"]),
                   first_bar_ms=int(d["first_bar_ms"]), last_bar_ms=int(d["last_bar_ms"]),
                   bars=int(d["bars"]), orders=int(d["orders"]),
                   updated_at_ms=int(d["updated_at_ms"]),
                   **{k: nan if d.get(k) is None else float(d[k])
                      for k in ("total_return", "sharpe", "max_drawdown", "ic")})


@dataclass(frozen=True)
class Evidence:
    """What ``tm models promote`` shows and checks."""

    version: str
    kind: str
    walk_forward: dict[str, Any]
    shadow: list[ShadowRecord] = field(default_factory=list)

    @property
    def forward_days(self) -> float:
        """Days of forward shadow trading: the union of the bar windows of paper and live runs
        (replays do not count; two books over the same days count those days once)."""
        spans = sorted((r.first_bar_ms, r.last_bar_ms) for r in self.shadow if r.forward)
        total, end = 0, None
        for a, b in spans:
            if end is None or a > end:
                total, end = total + (b - a), b
            elif b > end:
                total, end = total + (b - end), b
        return total / DAY_MS

    @property
    def forward_ic(self) -> float:
        """Realised IC of the forward runs, weighted by their bars (NaN when none has one)."""
        runs = [r for r in self.shadow if r.forward and r.bars > 0 and math.isfinite(r.ic)]
        bars = sum(r.bars for r in runs)
        return sum(r.ic * r.bars for r in runs) / bars if bars else math.nan

    def shortfall(self, min_forward_days: float) -> str | None:
        """Why the evidence is not enough to promote, or None when it is."""
        if self.forward_days >= min_forward_days:
            return None
        return (f"{self.version} has {self.forward_days:.1f} days of forward shadow evidence "
                f"(paper/live), below the minimum of {min_forward_days:g}")


WALK_FORWARD_KEYS = ("mean_ic", "sharpe", "hit_rate", "baseline_mean_ic", "baseline_sharpe",
                     "gate_passed", "why")


def shadow_records(metrics: dict[str, Any]) -> list[ShadowRecord]:
    """The shadow runs stored in a registry row's metrics, oldest window first."""
    runs = [ShadowRecord.from_json(d) for d in (metrics.get(SHADOW_KEY) or {}).values()]
    return sorted(runs, key=lambda r: (r.first_bar_ms, r.run_id))


def evidence_of(version: str, kind: str, metrics: dict[str, Any]) -> Evidence:
    """The evidence held in a registry row's metrics."""
    wf = {k: metrics[k] for k in WALK_FORWARD_KEYS if k in metrics}
    return Evidence(version=version, kind=kind, walk_forward=wf, shadow=shadow_records(metrics))
