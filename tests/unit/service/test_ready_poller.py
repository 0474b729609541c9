"""``tm_service_ready`` follows the truth on its own schedule, whether or not anybody calls
``/readyz`` (issue 18: with nobody calling it, every service reported 0 while ready)."""

from __future__ import annotations

import asyncio
import time

import pytest
from tm_common.bus.memory import InMemoryBus
from tm_common.service.runtime import ServiceRuntime
from tm_common.settings import CommonSettings


def settings() -> CommonSettings:
    return CommonSettings(service_name="svc", consumer_name="svc-0", namespace="ns:")


def ready_gauge(rt: ServiceRuntime) -> float | None:
    return rt.metrics.registry.get_sample_value("tm_service_ready")


async def wait_for(cond, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.01)
    return cond()


async def test_the_gauge_follows_readiness_without_any_readyz_call():
    state = {"model": False, "calls": 0}

    def model() -> bool:
        state["calls"] += 1
        return state["model"]

    rt = ServiceRuntime(settings(), InMemoryBus(), ready_checks={"model": model},
                        ready_poll_interval_s=0.05)
    assert ready_gauge(rt) == 0                          # before start: not ready
    await rt.start()
    try:
        assert await wait_for(lambda: state["calls"] >= 2), "the checks never ran on their own"
        assert ready_gauge(rt) == 0                      # the check says no: the gauge says no
        state["model"] = True
        assert await wait_for(lambda: ready_gauge(rt) == 1), "ready, but the gauge stayed 0"
        state["model"] = False                           # and back: the gauge is not sticky
        assert await wait_for(lambda: ready_gauge(rt) == 0), "not ready, but the gauge stayed 1"
    finally:
        await rt.stop()
    calls = state["calls"]
    await asyncio.sleep(0.2)
    assert state["calls"] == calls, "the poller outlived stop()"


async def test_a_check_that_raises_reads_not_ready_and_the_poller_keeps_going():
    flags = {"boom": True}

    def flaky() -> bool:
        if flags["boom"]:
            raise RuntimeError("registry unreachable")
        return True

    rt = ServiceRuntime(settings(), InMemoryBus(), ready_checks={"registry": flaky},
                        ready_poll_interval_s=0.05)
    await rt.start()
    try:
        await asyncio.sleep(0.15)
        assert ready_gauge(rt) == 0
        flags["boom"] = False
        assert await wait_for(lambda: ready_gauge(rt) == 1)
    finally:
        await rt.stop()


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError, match="ready_poll_interval_s must be > 0"):
        ServiceRuntime(settings(), InMemoryBus(), ready_poll_interval_s=0)
