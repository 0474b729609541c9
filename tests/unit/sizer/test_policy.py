"""The ``rl`` bundle contract, the registry-facing loader and the settings → parameters."""

from __future__ import annotations

import numpy as np
import pytest
from tm_common.models.bundle import Bundle
from tm_quant.sizing.observation import OBS_DIM, OBS_SPEC
from tm_sizer.config import SizerSettings
from tm_sizer.domain.policy import PolicyFormatError, RLPolicy
from tm_sizer.policies import BadPolicy, SizerPolicies, parse
from tm_sizer.testing import FakeRegistry, policy_bundle, random_actor_arrays


def test_round_trip_through_bundle_bytes():
    b = policy_bundle("rl-x", max_fraction=0.2, arrays=random_actor_arrays(bias=-9.0))
    pol = parse(b.to_bytes())
    assert pol.version == "rl-x" and pol.usable and pol.max_fraction == 0.2
    obs = np.zeros(OBS_DIM)
    assert pol.fraction(obs, cap=0.25) == pytest.approx(-0.2, abs=1e-4)   # tanh(-9) * 0.2
    assert pol.fraction(obs, cap=0.1) == -0.1                             # the sizer's cap wins


@pytest.mark.parametrize(("key", "value", "match"), [
    ("kind", "signal", "kind"),
    ("obs_spec", list(OBS_SPEC)[:-1], "observes"),
    ("obs_spec", list(reversed(OBS_SPEC)), "observes"),
    ("max_fraction", 0.0, "max_fraction"),
    ("max_fraction", True, "max_fraction"),
    ("gate", {"rl_sharpe": 1.0}, "gate"),
    ("actor", "actor.json", "actor"),
])
def test_manifest_contract(key, value, match):
    b = policy_bundle()
    with pytest.raises(PolicyFormatError, match=match):
        RLPolicy.from_manifest({**b.manifest, key: value}, b.npz)


def test_failed_gate_loads_but_is_not_usable():
    assert not parse(policy_bundle(passed=False).to_bytes()).usable


async def test_loader_errors_are_classified():
    reg = FakeRegistry()
    reg.add(policy_bundle("rl-a"), production=True)
    pols = SizerPolicies(reg)
    assert (await pols.production()).version == "rl-a"
    assert await pols.get("nope") is None
    bad = Bundle(manifest={"kind": "rl", "version": "rl-bad"}, files={})
    reg.add(bad)
    with pytest.raises(BadPolicy):
        await pols.get("rl-bad")
    reg.fail = True
    assert (await pols.get("rl-a")).version == "rl-a"        # cached: no registry call
    from tm_common.errors import TransientError
    with pytest.raises(TransientError):
        await pols.production()


def test_settings_build_params():
    s = SizerSettings(symbols="btcusdt, ethusdt", max_fraction=0.1, kelly_confidence=0.2,
                      regime_fractions={"Bull": 1.0, "Neutral": 0.5, "Bear": 0.2, "Crisis": 0.0},
                      fee_rate=0.001, slippage_rate=0.0005)
    p = s.params()
    assert p.symbols == ("BTCUSDT", "ETHUSDT") and p.kelly.max_fraction == 0.1
    assert p.thresholds.kelly_confidence == 0.2 and p.cost_rate == pytest.approx(0.0015)
    assert p.kelly.regime_fraction("Crisis") == 0.0
    with pytest.raises(ValueError):
        SizerSettings(regime_fractions={"Bull": 2.0, "Neutral": 0.5, "Bear": 0.2,
                                        "Crisis": 0.0}).params()


def test_export_bundle_version_is_content_addressed():
    from tm_trainer.rl.export import build_bundle

    arrays = random_actor_arrays(seed=4)
    gate = {"passed": True, "rl_sharpe": 1.2, "kelly_sharpe": 0.4}
    a = build_bundle(arrays, max_fraction=0.25, gate=gate)
    b = build_bundle(arrays, max_fraction=0.25, gate=gate)
    c = build_bundle(arrays, max_fraction=0.25, gate={**gate, "passed": False})
    assert a.version == b.version and a.to_bytes() == b.to_bytes()
    assert a.version != c.version and a.version.startswith("rl-")
    assert parse(a.to_bytes()).version == a.version
