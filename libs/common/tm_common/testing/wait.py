"""Polling until something holds, for tests that drive real processes and servers.

One poller for all of them: :func:`wait_for` (a plain predicate) and :func:`wait_for_async` (a
coroutine predicate). A predicate that raises one of ``retry_on`` (by default the connection
errors of a server that is not up yet) counts as "not yet"; anything else propagates at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

T = TypeVar("T")

#: Errors of a server that is not answering yet: retried, the last one named on timeout.
NOT_UP_YET: tuple[type[BaseException], ...] = (httpx.HTTPError, OSError)


def wait_for(pred: Callable[[], T], timeout_s: float = 15.0, what: str = "condition",
             interval_s: float = 0.05,
             retry_on: tuple[type[BaseException], ...] = NOT_UP_YET) -> T:
    """Call ``pred`` every ``interval_s`` seconds until it returns a truthy value, which is
    returned. After ``timeout_s`` seconds raise ``AssertionError`` naming ``what`` and the last
    error retried (if any)."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except retry_on as e:
            last = e
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last error: {last})")


async def wait_for_async(pred: Callable[[], Awaitable[T]], timeout_s: float = 30.0,
                         what: str = "condition", interval_s: float = 0.05) -> T:
    """:func:`wait_for` for a coroutine predicate (awaited at least once; errors propagate)."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = await pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)
