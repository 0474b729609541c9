"""Background jobs that several services share, as ``async fn(stop_event)`` factories."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import structlog

from tm_common.errors import TransientError
from tm_common.service.runtime import Background

log = structlog.get_logger("tm.service")


class WriteBehind(Protocol):
    """A repository's write-behind loop (``tm_common.db.writer.WriteBehindWriter``)."""

    @property
    def backlog(self) -> int: ...

    async def run(self) -> None: ...

    async def flush(self, timeout_s: float = ...) -> bool: ...


async def every(interval_s: float, stop: asyncio.Event) -> AsyncIterator[None]:
    """Yields each time ``interval_s`` seconds pass without ``stop`` being set; ends as soon as it
    is (a live-time periodic check: ``async for _ in every(5.0, stop): ...``)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
            return
        except TimeoutError:
            pass
        yield


def retry_until_done(step: Callable[[], Awaitable[None]], *, retry_s: float,
                     failed_event: str, logger: Any = None) -> Background:
    """Await ``step()`` until it returns; after a :class:`TransientError`, log ``failed_event``
    and try again ``retry_s`` seconds later (or return at once when stopped)."""
    out = logger or log

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await step()
                return
            except TransientError as e:
                out.warning(failed_event, error=str(e))
            try:
                await asyncio.wait_for(stop.wait(), timeout=retry_s)
            except TimeoutError:
                pass
    return run


def write_behind(repo: WriteBehind, *, incomplete_event: str, flush_timeout_s: float = 5.0,
                 logger: Any = None) -> Background:
    """Run ``repo.run()`` (its write-behind loop) until stopped, then give its queue
    ``flush_timeout_s`` to land; what is left is logged as ``incomplete_event`` (to ``logger``) with the backlog
    (the rows are not lost for good: the service's output stream holds the same events)."""
    out = logger or log

    async def run(stop: asyncio.Event) -> None:
        task = asyncio.create_task(repo.run())
        await stop.wait()
        if not await repo.flush(timeout_s=flush_timeout_s):
            out.warning(incomplete_event, backlog=repo.backlog)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return run
