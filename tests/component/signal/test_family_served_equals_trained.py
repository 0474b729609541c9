"""Your own signal, end to end (ARCHITECTURE §10.5): the example family ``logistic`` is trained by
the real trainer on the shipped data (the same walk-forward, gates and costs as the built-in
family; a reduced --fast configuration), registered in a throwaway SQLite registry with its gate
result, promoted (by the gates, or by hand as ``tm models promote --force`` would), and served by
the signal handler in the real consumer loop on a lockstep replay of the bars after its
cut-off. Bar by bar, the served P(up) equals the trainer's own prediction for the same bars with
the same bundle (:func:`tm_trainer.holdout.bundle_predictions`: batch features from
``compute_batch``, the family's numpy ``predict`` over the window's rows).

A bundle naming a family the service does not know is refused: its promotion is dead-lettered
with the reason, the model in use stays, and ``/readyz`` says why when it is production.

Measured (3 instruments x 120 bars from 2024-04-13 12:00, cut-off at the first; fast
configuration): max |dP(up)| 1.7e-16 / 1.1e-16 / 5.6e-17 (BTC / ETH / SOL), 0 direction flips, P(up)
ranging over 0.06-0.08 per instrument. The predictor gives one row alone the same bits as in a
batch (``tests/unit/quant/test_families.py``); the residual is the incremental and batch
features agreeing to the last bits rather than bit for bit (their documented tolerance is 1e-9
relative), which float64 weights carry through where the built-in family's float32 tree
thresholds absorb it. Bound asserted: 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
from tm_common.bus import InMemoryBus
from tm_common.bus.streams import MODELS_PROMOTED, dlq
from tm_common.models.bundle import Bundle
from tm_signal.handler import NotReady
from tm_trainer.registry_ops import record

from .conftest import (
    SYMS,
    make,
    promoted_env,
    publish_lockstep,
    serve_lockstep,
    served_vs_trained,
    signals,
    train_window,
)

START, N = 5000, 120


@pytest.fixture(scope="module")
def trained():
    """(train result, {symbol: {bar open ms: the trainer's P(up)}}) for the window."""
    return train_window("logistic", START, N, n_windows=4)


async def _register_and_promote(registry, result) -> None:
    out = await record(registry, result, promote=True, min_days=0)   # the gates alone
    rec = await registry.get(result.signal_version)
    assert rec is not None and rec.params["family"] == "logistic"
    assert rec.metrics["gate_passed"] == result.gate_passed and rec.metrics["family"] == "logistic"
    assert rec.metrics["why"] == ("; ".join(result.reasons) or "gates passed")
    assert rec.bundle().manifest["metrics"]["gate"]["passed"] == result.gate_passed
    if result.gate_passed:
        assert rec.stage == "production"
    else:  # refused by its gates: stays a candidate, then promoted by hand (as --force does)
        assert rec.stage == "candidate" and any("refused" in k for k in out.kept)
        await registry.promote(result.signal_version, "test: served-equals-trained",
                               evidence={"forced": True})
    assert (await registry.production("signal")).version == result.signal_version


async def test_the_example_family_is_trained_gated_registered_and_served_as_trained(
        trained, registry):
    result, expected = trained
    await _register_and_promote(registry, result)
    served = await serve_lockstep(registry, START, N)
    assert len(served) == len(SYMS) * N
    assert {b["model_version"] for b in served} == {result.signal_version}
    assert all(b["reason"] == "ok" for b in served), {b["reason"] for b in served}
    figures = {s: (dp, flips, np.ptp([p for p in expected[s].values()]))
               for s, (dp, flips) in served_vs_trained(served, expected).items()}
    print("family parity (max |dP|, flips, P(up) range)", figures)
    for s, (dp, flips, spread) in figures.items():
        assert dp <= 1e-12 and flips == 0, (s, figures)
        assert spread > 1e-3, (s, figures)          # the model does move with the bars


async def test_a_bundle_naming_an_unknown_family_is_dead_lettered_and_refused(trained, registry):
    result, _ = trained
    await _register_and_promote(registry, result)
    good = Bundle.from_bytes(result.signal_bytes)
    bad = Bundle({**good.manifest, "version": "signal-alien-1", "family": "alien"}, good.files)
    await registry.register("signal", "signal-alien-1", bad.to_bytes(), data_hash="t",
                            features={}, params={"family": "alien"}, seed=0, metrics={})
    bus = InMemoryBus()
    handler, consumer = make(bus, registry)
    await publish_lockstep(bus, START, 2, consumer=consumer)
    await registry.promote("signal-alien-1", "test: an unknown family")
    await bus.publish(MODELS_PROMOTED, promoted_env("signal-alien-1"))
    await consumer.run_until_idle()
    dead = await bus.entries(dlq(MODELS_PROMOTED))
    assert len(dead) == 1
    reason = dead[0][1]["dlq_reason"]
    assert "signal-alien-1: unknown signal family 'alien': this code knows xgboost, logistic, random_forest, trend" \
        in reason, reason
    await publish_lockstep(bus, START + 2, 1, consumer=consumer)
    assert {s["body"]["model_version"] for s in await signals(bus)} == {result.signal_version}

    # a fresh service whose production is that bundle: not ready, and says why
    fresh, _ = make(InMemoryBus(), registry, name="signal-1")
    await fresh.prefetch()
    with pytest.raises(NotReady, match="production signal model signal-alien-1 unusable: .*"
                                       "unknown signal family 'alien'"):
        fresh.ready()
