"""TCP proxies in front of a real server, for network faults in tests: one that loses one reply
(:class:`ReplyDropProxy`), one that goes silent without closing (:class:`StallProxy`).

:meth:`ReplyDropProxy.drop_reply_after` arms it: the next client request containing ``marker``
(e.g. ``b"EVALSHA"``, ``b"EXEC"``) is passed on to the server, which runs it; the connection is
then closed before the answer comes back. To the client this is exactly a Redis killed right after
running a command (with ``appendfsync always`` the command survives the restart): the effect
happened, the client cannot know.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self
from urllib.parse import urlsplit, urlunsplit


class _LocalProxy:
    """A listener on an ephemeral 127.0.0.1 port (``port`` once started) whose connections
    :meth:`_serve` forwards to ``target``. Subclasses say what a connection does and what
    :meth:`_after_close` waits for once the listener is closed."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._after_close()

    async def _after_close(self) -> None:
        raise NotImplementedError

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class ReplyDropProxy(_LocalProxy):
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        super().__init__(target_port, target_host)
        self.dropped = asyncio.Event()
        self._marker: bytes | None = None

    @classmethod
    async def before(cls, redis_url: str) -> ReplyDropProxy:
        """A started proxy in front of the Redis server of ``redis_url``."""
        port = urlsplit(redis_url).port
        return await cls(port if port is not None else 6379).start()

    def proxied(self, redis_url: str) -> str:
        """``redis_url`` through this proxy: its scheme, credentials, database and query kept,
        its host and port this proxy's."""
        parts = urlsplit(redis_url)
        creds = parts.netloc.rpartition("@")[0]
        netloc = f"{creds}@127.0.0.1:{self.port}" if creds else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def _after_close(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    def drop_reply_after(self, marker: bytes) -> None:
        self._marker = marker
        self.dropped.clear()

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection(*self.target)
        lost = asyncio.Event()

        async def upstream() -> None:
            while data := await c_reader.read(65536):
                hit = self._marker is not None and self._marker in data
                if hit:
                    self._marker = None
                    lost.set()                  # from now on nothing goes back to the client
                s_writer.write(data)
                await s_writer.drain()
                if hit:
                    await asyncio.sleep(0.3)    # the server runs it; its answer is dropped
                    self.dropped.set()
                    return

        async def downstream() -> None:
            while data := await s_reader.read(65536):
                if lost.is_set():
                    continue                    # the answer to the lost request, and after
                c_writer.write(data)
                await c_writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        for w in (c_writer, s_writer):
            w.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await w.wait_closed()


class StallProxy(_LocalProxy):
    """A TCP proxy that can go silent without closing (a half-open connection: a NAT or a load
    balancer that forgets the flow). :meth:`stall` freezes every connection open now: bytes are
    no longer forwarded either way, and nothing is closed; connections made afterwards work.
    ``connections`` counts the connections accepted."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        super().__init__(target_port, target_host)
        self.connections = 0
        self._frozen: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def _after_close(self) -> None:
        # the stalled connections never end by themselves: cancel their pipes
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stall(self) -> None:
        """Stop forwarding on every connection open now (they stay open)."""
        for ev in self._frozen:
            ev.set()

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        frozen = asyncio.Event()
        self._frozen.append(frozen)
        s_reader, s_writer = await asyncio.open_connection(*self.target)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                if frozen.is_set():
                    continue                       # swallowed: the peer never hears of it
                writer.write(data)
                await writer.drain()
            if not frozen.is_set():
                writer.close()

        tasks = [asyncio.create_task(pipe(c_reader, s_writer)),
                 asyncio.create_task(pipe(s_reader, c_writer))]
        self._tasks.update(tasks)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.gather(*tasks)
        for w in (c_writer, s_writer):
            w.close()
