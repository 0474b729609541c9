"""The sizer handler on the in-memory bus with the real consumer loop (state saved with acks)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from tm_common.bus import InMemoryBus
from tm_common.bus.streams import (
    MD_BAR,
    MODELS_PROMOTED,
    PORTFOLIO_SNAPSHOT,
    REGIME_STATE,
    RISK_BREAKER,
    SIGNAL_TL,
    SIZING_TARGET,
)
from tm_common.events import Envelope
from tm_sizer.app import build
from tm_sizer.commands import SIZER_COMMAND, flush_envelope
from tm_sizer.config import SizerSettings
from tm_sizer.testing import (
    FakeRegistry,
    bar_env,
    bar_ms,
    breaker_env,
    policy_bundle,
    promoted_env,
    random_actor_arrays,
    regime_env,
    signal_env,
    snapshot_env,
)

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


class Rig:
    def __init__(self, registry: FakeRegistry | None = None) -> None:
        self.bus = InMemoryBus()
        self.registry = registry or FakeRegistry()
        self.restart()

    def restart(self) -> None:
        """The sizer as its process builds it (``build``), on this rig's bus and registry."""
        settings = SizerSettings.from_values(symbols=SYMS, db_enabled=False, mode="backtest",
                                             consumer_name="sizer-0")
        parts = build(settings, bus=self.bus, registry=self.registry)
        self.handler, (self.consumer,) = parts.handler, parts.consumers
        self.metrics = self.handler.metrics

    async def send(self, stream: str, *envs: Envelope) -> None:
        for e in envs:
            await self.bus.publish(stream, e)
        await self.consumer.run_until_idle()

    async def bar(self, i: int, *, p: float = 0.8, regime: bool = True, syms=SYMS) -> None:
        for s in syms:
            await self.send(MD_BAR, bar_env(s, i, 100.0 + i + (i % 3)))
            if regime:
                await self.send(REGIME_STATE, regime_env(s, i))
            await self.send(SIGNAL_TL, signal_env(s, i, p=p))

    async def targets(self) -> list:
        return [Envelope.from_fields(f) for _, f in await self.bus.entries(SIZING_TARGET)]

    def count(self, name: str, **labels) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_joins_signal_regime_and_bar_per_instrument():
    rig = Rig()
    await rig.bar(0, p=0.8)
    out = await rig.targets()
    assert [e.body.instrument for e in out] == list(SYMS)
    for e in out:
        b = e.body
        assert b.bar_time_ms == bar_ms(0) and e.correlation_id == f"{b.instrument}:{bar_ms(0)}"
        assert b.tier == "BLENDED" and b.rl_fraction is None and not b.regime_stale
        assert b.regime == "Bull" and b.target_fraction == b.kelly_fraction > 0
    assert rig.count("tm_sizer_decisions_total", tier="BLENDED", instrument="BTCUSDT") == 1
    await rig.send(SIGNAL_TL, signal_env("BTCUSDT", 0))            # redelivered fact: late
    assert len(await rig.targets()) == 3


async def test_breaker_open_means_emergency_flat_then_recovers():
    rig = Rig()
    await rig.send(PORTFOLIO_SNAPSHOT, snapshot_env(0, "10000"))
    await rig.send(RISK_BREAKER, breaker_env("OPEN"))
    await rig.bar(0, p=0.9)
    await rig.bar(1, p=0.66)
    flat = await rig.targets()
    assert {(e.body.tier, e.body.target_fraction) for e in flat} == {("EMERGENCY_FLAT", 0.0)}
    await rig.send(RISK_BREAKER, breaker_env("HALF_OPEN", 1, "OPEN"))
    await rig.bar(2, p=0.9)
    after = (await rig.targets())[6:]
    assert all(e.body.tier != "EMERGENCY_FLAT" and e.body.target_fraction > 0 for e in after)
    assert rig.handler.status()["equity"] == "10000"


async def test_stale_regime_by_later_bar_and_by_flush_command():
    rig = Rig()
    await rig.bar(0)
    await rig.bar(1, regime=False, syms=("BTCUSDT",))      # BTC bar 1: no regime (yet)
    assert len(await rig.targets()) == 3
    await rig.send(MD_BAR, bar_env("BTCUSDT", 2, 101.0))    # a later bar time flushes it
    stale = (await rig.targets())[-1].body
    assert stale.bar_time_ms == bar_ms(1) and stale.regime_stale and stale.regime == "Bull"
    assert "regime stale" in stale.reason
    assert rig.count("tm_sizer_regime_stale_total", instrument="BTCUSDT", cause="later_bar") == 1
    await rig.send(REGIME_STATE, regime_env("BTCUSDT", 1))     # too late: ignored
    assert rig.count("tm_sizer_inputs_dropped_total", reason="late_regime") == 1
    # live timer path: the flush command decides the pending bar 2 (signal in, regime missing)
    await rig.send(SIGNAL_TL, signal_env("BTCUSDT", 2))
    await rig.send(SIZER_COMMAND, flush_envelope("BTCUSDT", bar_ms(2), waited_s=121, now_ns=1))
    last = (await rig.targets())[-1]
    assert last.body.bar_time_ms == bar_ms(2) and last.body.regime_stale
    assert rig.count("tm_sizer_regime_stale_total", instrument="BTCUSDT", cause="timeout") == 1


async def test_policy_from_registry_and_hot_reload():
    reg = FakeRegistry()
    reg.add(policy_bundle("rl-a", arrays=random_actor_arrays(bias=5.0)), production=True)
    reg.add(policy_bundle("rl-b", passed=False))
    rig = Rig(reg)
    await rig.bar(0, p=0.9)                                      # live IC 0.1, confidence 0.8
    first = await rig.targets()
    assert {e.body.tier for e in first} == {"FULL_RL"}
    assert {e.body.policy_version for e in first} == {"rl-a"}
    reg.promote("rl-b")
    await rig.send(MODELS_PROMOTED, promoted_env("rl-b"))       # gate failed: never used
    await rig.bar(1, p=0.9)
    second = (await rig.targets())[3:]
    assert {e.body.tier for e in second} == {"BLENDED"} and {e.body.rl_fraction for e in second} \
        == {None}
    await rig.send(MODELS_PROMOTED, promoted_env("rl-missing"))
    assert await rig.bus.length(MODELS_PROMOTED + ".dlq") == 1
    reg.add(policy_bundle("rl-c"))                               # a candidate, not promoted
    await rig.send(MODELS_PROMOTED, promoted_env("rl-c"))        # forged: refused
    assert await rig.bus.length(MODELS_PROMOTED + ".dlq") == 2
    rig.restart()                                                # re-attaches rl-b from state
    await rig.bar(2, p=0.9)
    assert rig.handler.engine.policy_version == "rl-b"


async def test_restart_midway_equals_uninterrupted():
    reg = FakeRegistry()
    reg.add(policy_bundle("rl-a"), production=True)
    a, b = Rig(reg), Rig(reg)
    for i in range(12):
        p = 0.9 if i % 2 else 0.62
        await a.bar(i, p=p)
        await b.bar(i, p=p)
        if i == 5:
            b.restart()
    bodies = [[e.body for e in await r.targets()] for r in (a, b)]
    assert bodies[0] == bodies[1] and len(bodies[0]) == 36


def test_sizer_never_imports_torch_even_after_handling_events():
    code = textwrap.dedent("""
        import asyncio, sys
        import tm_sizer.app, tm_sizer.__main__
        sys.path.insert(0, %r)
        from test_sizer_handler import Rig
        from tm_sizer.testing import FakeRegistry, policy_bundle
        async def main():
            reg = FakeRegistry(); reg.add(policy_bundle("rl-a"), production=True)
            rig = Rig(reg)
            for i in range(3):
                await rig.bar(i, p=0.9)
            assert len(await rig.targets()) == 9
        asyncio.run(main())
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "stable_baselines3"))
        assert not bad, bad
        print("ok")
    """) % (str(__import__("pathlib").Path(__file__).parent),)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "ok", r.stderr[-2000:]


@pytest.mark.parametrize("down", [True])
async def test_registry_down_is_transient_then_recovers(down):
    reg = FakeRegistry()
    reg.add(policy_bundle("rl-a"), production=True)
    reg.fail = down
    rig = Rig(reg)
    rig.consumer.retry_backoff_s = rig.consumer.max_backoff_s = 0.01
    await rig.bus.publish(MD_BAR, bar_env("BTCUSDT", 0, 100.0))
    task = __import__("asyncio").create_task(rig.consumer.run_until_idle())
    await __import__("asyncio").sleep(0.1)
    assert not task.done()                                      # retrying, not dead-lettered
    reg.fail = False
    await task
    assert rig.handler.engine.policy_version == "rl-a"
