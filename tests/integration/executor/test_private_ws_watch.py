"""The executor's private WebSocket against the simulator over a real WebSocket: a half-open
connection (the sim stops answering without closing: ``ws_mute``) is replaced within the read
deadline; a refused subscribe is detected and retried with jittered backoff; a host clock behind
the venue's still authenticates (the auth ``expires`` is on the venue's clock)."""

from __future__ import annotations

import asyncio
import random
import time

from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.sim import QUIET_FAULTS
from tm_executor.fills import PrivateWsSource
from tm_executor.repository import ExecutorRepository
from tm_executor.venue import VenueClient

from .conftest import executor_settings

BEHIND_MS = 60_000


async def _until(pred, timeout_s: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


class _Running:
    """A :class:`PrivateWsSource` running as a task on the sim, stopped on exit."""

    def __init__(self, sim, redis_url, namespace, *, now_ms=None, **kw) -> None:
        self.settings = executor_settings(sim, redis_url, namespace, **kw)
        self.bus = RedisStreamsBus(redis_url, prefix=namespace)
        extra = {} if now_ms is None else {"now_ms": now_ms}
        self.ws = PrivateWsSource(self.settings, ExecutorRepository(self.bus), lambda: [],
                                  backoff_s=(0.1, 0.4), rng=random.Random(3), **extra)
        self.stop = asyncio.Event()

    async def __aenter__(self) -> PrivateWsSource:
        self.task = asyncio.create_task(self.ws.run(self.stop))
        return self.ws

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)
        await self.bus.close()


async def test_a_half_open_private_connection_is_replaced_within_the_deadline(
        sim, redis_url, namespace):
    try:
        async with _Running(sim, redis_url, namespace, ws_ping_s=0.3,
                            ws_dead_after_pings=3) as ws:
            await _until(lambda: ws.subscribed, 10, "subscribed")
            await _until(lambda: ws.pongs >= 2, 5, "pongs answered")
            assert ws.connects == 1
            sim.post("/sim/faults", {"ws_mute": True})       # no pong, no push, no close
            t_mute = time.monotonic()
            await _until(lambda: ws.errors.get("ReadDeadlineExceeded", 0) >= 1, 10,
                         "the dead connection noticed")
            noticed_s = time.monotonic() - t_mute
            print(f"\nhalf-open private connection noticed after {noticed_s:.2f} s")
            # 0.9 s (3 pings of 0.3 s) since the last pong, which came up to one ping
            # interval before the mute
            assert 0.55 <= noticed_s < 2.5, noticed_s
            assert not ws.subscribed
            sim.post("/sim/faults", {"ws_mute": False})
            await _until(lambda: ws.subscribed, 10, "a new connection")
            assert ws.connects >= 2
    finally:
        sim.post("/sim/faults", {**QUIET_FAULTS, "ws_mute": False})


async def test_a_refused_subscribe_is_detected_and_retried_with_jitter(sim, redis_url,
                                                                       namespace):
    sim.post("/sim/faults", {"ws_refuse_subscribe": True})
    try:
        async with _Running(sim, redis_url, namespace) as ws:
            await _until(lambda: ws.errors.get("SubscribeRefused", 0) >= 3, 15,
                         "three refusals")
            assert not ws.subscribed and "subscribe refused" in (ws.last_error or "")
            waits = ws.retry_waits_s[:3]
            nominal = [0.1, 0.2, 0.4]           # doubling, capped: nothing was subscribed
            assert all(n * 0.5 <= w <= n for w, n in zip(waits, nominal, strict=True)), waits
            assert len({round(w / n, 6) for w, n in zip(waits, nominal, strict=True)}) > 1
            sim.post("/sim/faults", {"ws_refuse_subscribe": False})
            await _until(lambda: ws.subscribed, 10, "subscribed once accepted")
    finally:
        sim.post("/sim/faults", {**QUIET_FAULTS, "ws_refuse_subscribe": False})


async def test_a_host_clock_behind_the_venue_still_authenticates(sim, redis_url, namespace):
    """The host clock 60 s behind: ``expires`` = host + 10 s would be in the venue's past
    ("Request expired"); on the measured venue clock it authenticates."""
    sim.post("/sim/faults", {**QUIET_FAULTS})
    settings = executor_settings(sim, redis_url, namespace, max_clock_skew_ms=120_000)

    def behind() -> int:
        return int(time.time() * 1000) - BEHIND_MS
    venue = VenueClient(settings, host_ms=behind)
    offset = await venue.sync_clock()
    assert abs(offset - BEHIND_MS) < 2_000, offset

    async with _Running(sim, redis_url, namespace, now_ms=behind) as raw:
        await _until(lambda: raw.errors.get("WsAuthFailed", 0) >= 1, 10, "auth refused")
        assert "expired" in (raw.last_error or "").lower() and not raw.subscribed
    async with _Running(sim, redis_url, namespace, now_ms=venue.signing_ms) as ws:
        await _until(lambda: ws.subscribed, 10, "authenticated and subscribed")
        assert not ws.errors
