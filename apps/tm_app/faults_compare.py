"""The checks of a fault drill: a faulty run against the clean run of the same window.

Each check is a :class:`Check` (name, ok, one-line detail). A failed check names the first
difference, so the one-line reason printed by ``python -m tm_app.faults`` says where to look.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tm_app.faults_run import RunResult, order_view


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def first_diff(a: Sequence, b: Sequence) -> str:
    """Where two sequences first differ, in one line."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"item {i}: clean {_short(x)} vs drill {_short(y)}"
    if len(a) != len(b):
        i = min(len(a), len(b))
        extra = a[i] if len(a) > len(b) else b[i]
        return f"clean has {len(a)}, drill {len(b)} (first extra: {_short(extra)})"
    return "identical"


def _short(x, n: int = 160) -> str:
    s = repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."


def same(name: str, clean: Sequence, drill: Sequence, what: str) -> Check:
    if list(clean) == list(drill):
        return Check(name, True, f"{len(drill)} {what} identical")
    return Check(name, False, first_diff(list(clean), list(drill)))


def _positions(run: RunResult) -> list[tuple]:
    snaps = run.mesh.record.snapshots
    if not snaps:
        return []
    return sorted((p.instrument, str(p.qty), str(p.avg_price)) for p in snaps[-1].positions)


def _duplicates(values) -> list:
    return [v for v, n in Counter(values).items() if n > 1]


def trading_checks(clean: RunResult, drill: RunResult) -> list[Check]:
    """Positions, equity, venue orders, orderLinkId uniqueness, every input handled."""
    cv, dv = clean.mesh.record.trading_view(), drill.mesh.record.trading_view()
    c_eq = cv["equity"][-1][1] if cv["equity"] else None
    d_eq = dv["equity"][-1][1] if dv["equity"] else None
    out = [
        same("final positions", _positions(clean), _positions(drill), "positions"),
        Check("final equity", c_eq == d_eq and c_eq is not None,
              f"clean {c_eq} vs drill {d_eq}"),
        same("equity curve", cv["equity"], dv["equity"], "snapshots"),
        same("approved orders", cv["orders"], dv["orders"], "orders"),
        same("fills", cv["fills"], dv["fills"], "fills"),
        same("venue orders", order_view(clean.venue_orders), order_view(drill.venue_orders),
             "venue orders"),
    ]
    links = [o.get("orderLinkId") for o in drill.venue_orders]
    dup = _duplicates(links)
    out.append(Check("no duplicate orderLinkId", not dup and bool(links) == bool(clean.venue_orders),
                     f"{len(links)} venue orders, {len(set(links))} distinct orderLinkIds"
                     + (f"; duplicated: {dup[:3]}" if dup else "")))
    dup_exec = _duplicates(f[1] for f in dv["fills"])
    out.append(Check("no duplicate fill", not dup_exec,
                     f"{len(dv['fills'])} fills" + (f"; repeated exec ids {dup_exec[:3]}" if dup_exec else "")))
    out.append(inputs_check(clean, drill))
    return out


def inputs_check(clean: RunResult, drill: RunResult) -> Check:
    """Every input handled or dead-lettered: no group left with lag or pending entries, the
    same bars on md.bar as the clean run (each once), dead letters as in the clean run."""
    problems = []
    if drill.busy_at_end:
        problems.append(f"busy at the end: {'; '.join(drill.busy_at_end[:3])}")
    bars = [(b.instrument, b.open_time_ms) for b in drill.mesh.record.bars]
    clean_bars = [(b.instrument, b.open_time_ms) for b in clean.mesh.record.bars]
    if _duplicates(bars):
        problems.append(f"md.bar repeats {_duplicates(bars)[:3]}")
    if sorted(set(bars)) != sorted(set(clean_bars)):
        problems.append(f"md.bar: {len(set(bars))} bars vs {len(set(clean_bars))} in the clean run")
    dl = {s: n for s, n in drill.mesh.record.dead_letters.items() if n}
    cdl = {s: n for s, n in clean.mesh.record.dead_letters.items() if n}
    if dl != cdl:
        problems.append(f"dead letters {dl} vs clean {cdl}")
    n = sum(len(v) for v in drill.mesh.record.streams.values())
    return Check("every input handled or dead-lettered", not problems,
                 "; ".join(problems) if problems else
                 f"{n} events, no lag or pending, dead letters {sum(dl.values())}")


def db_checks(clean: RunResult, drill: RunResult, tables: Sequence[str] | None = None) -> list[Check]:
    """The rows each service wrote (bars, fills, snapshots, ...) equal the clean run's."""
    out = []
    for t in tables or sorted(clean.db_rows):
        c, d = clean.db_rows.get(t, []), drill.db_rows.get(t, [])
        if not c and not d:
            out.append(Check(f"db {t}", True, "no rows in either run"))
            continue
        out.append(same(f"db {t}", c, d, "rows"))
    for note in drill.notes:
        out.append(Check("database flushed", False, note))
    return out


def ratio(a: float, b: float) -> str:
    return f"{a:.1f}s vs clean {b:.1f}s (x{a / b:.2f})" if b else f"{a:.1f}s"
