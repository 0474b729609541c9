"""A signal model is promoted with forward evidence, never on its walk-forward record alone: the
trainer registers a candidate whose gates passed and leaves it waiting; once a shadow book has
paper-traded it for the minimum of days with a positive realised IC, ``promote_ready`` (the
weekly ``tm train``, ``tm models promote-ready``) promotes it. A shadow book's default
candidate is the one waiting. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from tm_app.shadow.config import AUTO, AWAITING_EVIDENCE, NEWEST_REFUSED
from tm_app.shadow.pinned import resolve_candidate
from tm_common.models.evidence import DAY_MS, ShadowRecord, evidence_of
from tm_common.models.registry import ModelRegistry, RegistryError
from tm_common.testing.databases import migrated_engine
from tm_signal.testing import signal_bundle
from tm_trainer.pipeline import TrainResult
from tm_trainer.promotion import auto_refusal
from tm_trainer.registry_ops import promote_ready, record

T0 = 1_700_000_000_000


@pytest.fixture
async def registry(db_url):
    async with migrated_engine(db_url) as engine:
        ticks = iter(range(1_000, 10_000_000, 1000))
        yield ModelRegistry(engine, clock_ms=lambda: next(ticks))


def _result(version: str, passed: bool, seed: int = 1) -> TrainResult:
    summary = {"mean_ic": 0.05 if passed else 0.0, "sharpe": 0.9 if passed else 0.1,
               "hit_rate": 0.53, "baseline_mean_ic": 0.0, "baseline_sharpe": 0.2}
    return TrainResult(signal_version=version, gate_passed=passed,
                       signal_bytes=signal_bundle(version, first_bar_ms=T0, seed=seed),
                       reasons=[] if passed else ["OOS mean IC 0 < 0.03"],
                       report={"summary": summary}, data_hash="h" * 64, features={},
                       params={}, seed=seed)


async def _register(reg: ModelRegistry, version: str, passed: bool) -> None:
    out = await record(reg, _result(version, passed), promote=False)
    assert out.registered == [version]


def _shadow(run: str, mode: str, days: float, ic: float, after_days: float = 0) -> ShadowRecord:
    first = T0 + int(after_days * DAY_MS)
    last = first + int(days * DAY_MS)
    return ShadowRecord(run_id=run, mode=mode, first_bar_ms=first, last_bar_ms=last,
                        bars=max(1, int(days * 6)), total_return=0.01, sharpe=0.8,
                        max_drawdown=0.02, ic=ic, orders=10, updated_at_ms=last)


async def test_gates_passed_alone_leave_a_signal_candidate_waiting(registry):
    out = await record(registry, _result("sig-1", True), promote=True, min_days=28)
    assert out.promoted == [] and out.awaiting == ["sig-1"]
    assert (await registry.get("sig-1")).stage == "candidate"
    assert await registry.production("signal") is None
    (line,) = out.kept
    assert "sig-1 passed its gates and awaits forward evidence" in line
    assert "0.0 days of forward shadow evidence" in line and "tm shadow --candidate sig-1" in line
    # a refused one is refused, not waiting; with no minimum the gates alone promote
    out = await record(registry, _result("sig-0", False, seed=2), promote=True, min_days=28)
    assert out.awaiting == [] and "refused" in out.kept[0]
    out = await record(registry, _result("sig-2", True, seed=3), promote=True, min_days=0)
    assert [e.version for e in out.promoted] == ["sig-2"]


async def test_forward_evidence_promotes_the_newest_ready_candidate_newer_than_production(
        registry):
    await _register(registry, "old", True)
    await registry.promote("old", "first production", evidence={"forced": True})
    for v, passed in (("ready", True), ("refused", False), ("waiting", True)):
        await _register(registry, v, passed)
    await registry.record_shadow("ready", _shadow("p1", "paper", 20, 0.04))
    await registry.record_shadow("ready", _shadow("p2", "live", 10, 0.02, after_days=20))
    await registry.record_shadow("waiting", _shadow("p3", "paper", 3, 0.09))
    await registry.record_shadow("waiting", _shadow("demo", "replay", 400, 0.09))  # not counted
    await registry.record_shadow("refused", _shadow("p4", "paper", 60, 0.05))

    out = await promote_ready(registry, min_days=28)
    assert [(e.version, e.previous_version) for e in out.promoted] == [("ready", "old")]
    assert out.awaiting == ["waiting"] and "3.0 days" in out.kept[0]
    got = await registry.get("ready")
    change = got.history[-1]
    assert got.stage == "production" and change["evidence"]["automatic"] is True
    assert change["evidence"]["forward_days"] == 30.0
    assert change["evidence"]["forward_ic"] == pytest.approx((0.04 * 120 + 0.02 * 60) / 180, abs=1e-6)

    again = await promote_ready(registry, min_days=28)    # nothing new has earned it
    assert again.promoted == [] and again.awaiting == ["waiting"]
    assert (await registry.production("signal")).version == "ready"
    # "old" is archived and older than production: never promoted back by this path
    await registry.record_shadow("old", _shadow("p5", "paper", 90, 0.1))
    assert (await promote_ready(registry, min_days=28)).promoted == []


async def test_a_candidate_the_market_contradicted_forward_waits_for_a_person(registry):
    await _register(registry, "sig", True)
    await registry.record_shadow("sig", _shadow("p", "paper", 40, -0.03))
    rec = await registry.get("sig")
    why = auto_refusal(evidence_of(rec.version, rec.kind, rec.metrics), 28)
    assert why is not None and "realised IC" in why and "-0.0300" in why
    out = await promote_ready(registry, min_days=28)
    assert out.promoted == [] and out.awaiting == ["sig"]
    assert auto_refusal(evidence_of(rec.version, rec.kind, rec.metrics), 0) is None


async def test_the_default_shadow_candidate_is_the_one_waiting_for_evidence(registry):
    with pytest.raises(RegistryError, match="no refused signal candidate"):
        await resolve_candidate(registry, AUTO)
    await _register(registry, "refused-1", False)
    assert (await resolve_candidate(registry, AUTO)).version == "refused-1"
    with pytest.raises(RegistryError, match="passed its walk-forward gates"):
        await resolve_candidate(registry, AWAITING_EVIDENCE)
    await _register(registry, "passed-1", True)
    await _register(registry, "refused-2", False)
    assert (await resolve_candidate(registry, AUTO)).version == "passed-1"
    assert (await resolve_candidate(registry, AWAITING_EVIDENCE)).version == "passed-1"
    assert (await resolve_candidate(registry, NEWEST_REFUSED)).version == "refused-2"
    await registry.promote("passed-1", "test", evidence={"forced": True})
    assert (await resolve_candidate(registry, AUTO)).version == "refused-2"


async def test_auto_keeps_the_candidate_collecting_evidence_until_it_has_its_days(registry):
    """Of several candidates waiting, a book keeps paper-trading the one with the most forward
    days (it would otherwise restart the count for each newer one) until it has the minimum;
    then the next; with none left collecting, the newest refused one."""
    await _register(registry, "refused", False)
    await _register(registry, "a", True)
    await _register(registry, "b", True)                  # newer, no evidence yet
    assert (await resolve_candidate(registry, AUTO, min_days=28)).version == "b"
    await registry.record_shadow("a", _shadow("pa", "paper", 5, 0.01))
    assert (await resolve_candidate(registry, AUTO, min_days=28)).version == "a"
    await registry.record_shadow("a", _shadow("pa", "paper", 30, -0.01))   # has its days
    assert (await resolve_candidate(registry, AUTO, min_days=28)).version == "b"
    await registry.record_shadow("b", _shadow("pb", "paper", 28, 0.02))
    assert (await resolve_candidate(registry, AUTO, min_days=28)).version == "refused"
    with pytest.raises(RegistryError, match="still collects forward evidence"):
        await resolve_candidate(registry, AWAITING_EVIDENCE, min_days=28)


async def test_a_runs_banner_reads_the_candidates_forward_evidence(registry, db_url):
    """What a paper run's banner says about its challenger comes from the registry row."""
    from tm_app.explain import _models

    await _register(registry, "sig", True)
    await registry.record_shadow("sig", _shadow("p", "paper", 9.5, 0.031))
    cand = (await _models(db_url)).candidate
    assert (cand["version"], cand["forward_days"]) == ("sig", 9.5)
    assert cand["forward_ic"] == pytest.approx(0.031)
