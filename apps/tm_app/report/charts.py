"""The report's charts (matplotlib, Agg), each returned as PNG bytes."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tm_app.record import RunRecord

TIERS = ["EMERGENCY_FLAT", "FLAT", "PURE_KELLY", "BLENDED", "FULL_RL"]
REGIME_COLOURS = {"Bull": "#d8f3dc", "Neutral": "#f1f3f5", "Bear": "#ffe8cc", "Crisis": "#ffc9c9"}


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _shade_regimes(ax, rec: RunRecord, instrument: str = "BTCUSDT") -> None:
    regs = sorted((r.bar_time_ms, r.label) for r in rec.regimes if r.instrument == instrument)
    for (t, label), nxt in zip(regs, regs[1:] + [(regs[-1][0] + 4 * 3600_000, None)] if regs else []):
        ax.axvspan(_dt(t), _dt(nxt[0]), color=REGIME_COLOURS.get(label, "white"), lw=0, zorder=0)


def _breaker_lines(ax, rec: RunRecord) -> None:
    for b in rec.breaker:
        ax.axvline(_dt(b.at_ms), color="red" if b.to_state == "OPEN" else "orange", lw=1, ls="--")


def equity_chart(rec: RunRecord, initial: float) -> bytes:
    snaps = rec.snapshots
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    _shade_regimes(ax1, rec)
    t = [_dt(s.bar_time_ms) for s in snaps]
    eq = [float(s.equity) for s in snaps]
    ax1.plot(t, eq, color="#1c7ed6", lw=1.5, label="strategy equity")
    closes: dict[str, dict[int, float]] = defaultdict(dict)
    for b in rec.bars:
        closes[b.instrument][b.open_time_ms] = float(b.close)
    if snaps and closes:
        t0 = snaps[0].bar_time_ms
        bh = []
        for s in snaps:
            rets = [cl[s.bar_time_ms] / cl[t0] for cl in closes.values()
                    if s.bar_time_ms in cl and t0 in cl]
            bh.append(initial * sum(rets) / len(rets) if rets else float("nan"))
        ax1.plot(t, bh, color="#868e96", lw=1, label="buy & hold (equal weight)")
    _breaker_lines(ax1, rec)
    ax1.set_ylabel("USDT")
    ax1.legend(loc="upper left")
    ax1.set_title("Equity vs buy-and-hold (background: BTC regime; dashed: breaker)")
    dd = [-float(s.drawdown) * 100 for s in snaps]
    ax2.fill_between(t, dd, 0, color="#fa5252", alpha=0.5)
    ax2.set_ylabel("drawdown %")
    return _png(fig)


def positions_chart(rec: RunRecord) -> bytes:
    fig, ax = plt.subplots(figsize=(11, 3.5))
    series: dict[str, list] = defaultdict(list)
    insts = sorted({b.instrument for b in rec.bars})
    for s in rec.snapshots:
        q = {p.instrument: float(p.qty * p.mark_price) for p in s.positions}
        for i in insts:
            series[i].append((_dt(s.bar_time_ms), q.get(i, 0.0) / float(s.equity) if s.equity else 0))
    for i, pts in series.items():
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", lw=1, label=i)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("position / equity")
    ax.set_title("Position per instrument (signed notional as a fraction of equity)")
    ax.legend(loc="upper left")
    return _png(fig)


def tiers_chart(rec: RunRecord) -> bytes:
    fig, ax = plt.subplots(figsize=(11, 3))
    insts = sorted({z.instrument for z in rec.sized})
    for k, inst in enumerate(insts):
        pts = [(z.bar_time_ms, TIERS.index(z.tier) + (k - 1) * 0.12) for z in rec.sized
               if z.instrument == inst and z.tier in TIERS]
        # matplotlib converts datetimes through its units registry; its stubs only list numbers
        ax.scatter([_dt(t) for t, _ in pts], [y for _, y in pts], s=4, label=inst)  # type: ignore[arg-type]
    ax.set_yticks(range(len(TIERS)), TIERS)
    ax.set_title("Cascade tier of each sizing decision")
    ax.legend(loc="upper left", markerscale=3)
    return _png(fig)


def compare_chart(prod: RunRecord, challenger: RunRecord, initial: float, label: str) -> bytes:
    """Production's and the challenger's equity (top) and drawdown (bottom) on one time axis."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    for rec, name, colour in ((prod, "production", "#1c7ed6"),
                              (challenger, f"challenger {label} (shadow)", "#e8590c")):
        snaps = rec.snapshots
        t = [_dt(s.bar_time_ms) for s in snaps]
        ax1.plot(t, [float(s.equity) for s in snaps], color=colour, lw=1.5, label=name)
        ax2.plot(t, [-float(s.drawdown) * 100 for s in snaps], color=colour, lw=1)
    ax1.axhline(initial, color="#868e96", lw=0.8, ls=":")
    ax1.set_ylabel("USDT")
    ax1.legend(loc="upper left")
    ax1.set_title("Production vs challenger: equity (top), drawdown % (bottom)")
    ax2.set_ylabel("drawdown %")
    return _png(fig)
