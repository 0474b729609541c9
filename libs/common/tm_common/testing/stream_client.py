"""Publish to and read the streams of one namespace from a synchronous test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from tm_common.bus.redis import RedisStreamsBus
from tm_common.events import Envelope

T = TypeVar("T")


class StreamClient:
    """Each call opens a :class:`RedisStreamsBus` on ``url`` with prefix ``namespace`` in a fresh
    event loop, runs, and closes it."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.namespace = url, namespace

    def call(self, fn: Callable[[RedisStreamsBus], Awaitable[T]]) -> T:
        async def run() -> T:
            bus = RedisStreamsBus(self.url, prefix=self.namespace)
            try:
                return await fn(bus)
            finally:
                await bus.close()
        return asyncio.run(run())

    def publish(self, stream: str, envelopes: Iterable[Envelope]) -> list[str]:
        """Publish in order; the entry ids."""
        async def go(bus: RedisStreamsBus) -> list[str]:
            return [await bus.publish(stream, e) for e in envelopes]
        return self.call(go)

    def entries(self, stream: str) -> list[tuple[str, dict[str, str]]]:
        return self.call(lambda bus: bus.entries(stream, count=100_000))

    def bodies(self, stream: str) -> list[Any]:
        """The decoded event bodies on ``stream``, oldest first."""
        return [Envelope.from_fields(f).body for _, f in self.entries(stream)]

    def group(self, stream: str, group: str) -> dict[str, Any] | None:
        """The consumer group's info (XINFO GROUPS), or None."""
        async def go(bus: RedisStreamsBus) -> dict[str, Any] | None:
            return next((g for g in await bus.group_info(stream) if g["name"] == group), None)
        return self.call(go)
