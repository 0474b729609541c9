"""Redis Streams transport (Redis 7, and the embedded Redis 6.2).

The commit is one Lua script (``COMMIT``, :mod:`tm_common.bus.redis_scripts`), which Redis runs
atomically like MULTI/EXEC, with two checks before it writes anything:

1. the fence: a stateful consumer commits with the writer generation it took at start
   (``INCR`` of ``{namespace}state:{group}:generation``); if the key holds a newer one, a newer
   instance of the group has started, and the commit is refused with
   :class:`WriterSuperseded` (the stale instance then stops consuming);
2. ownership: the entry must still be pending *for this consumer*; if a reclaimer took it over
   meanwhile, :class:`LostOwnership` is raised, so a slow consumer and the one that reclaimed
   its entry can never both publish outputs for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT, KeyT, StreamIdT

from tm_common.bus.memory import dead_letter_fields
from tm_common.bus.protocol import Delivery, Fence, Output, TransportError
from tm_common.bus.redis_scripts import BUSY, COMMIT, CONFIRM, PUBLISH, TAKE_OVER
from tm_common.bus.signing import NO_KEYS, KeyRing
from tm_common.bus.streams import Streams, dlq, maxlen
from tm_common.errors import LostOwnership, StateChanged, WriterSuperseded
from tm_common.errors_boundary import redis_error, redis_errors
from tm_common.events.base import Envelope

_TRANSPORT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisStreamsBus:
    """The :class:`~tm_common.bus.protocol.Bus` protocol on Redis Streams."""

    def __init__(self, url: str, *, prefix: str = "tm:", client: aioredis.Redis | None = None,
                 socket_timeout_s: float = 5.0, keys: KeyRing | None = None,
                 **ssl_options: Any) -> None:
        """``url``: ``redis://[user:password@]host:port/db`` or ``rediss://...`` (TLS; redis-py
        reads ``ssl_*`` options from its query string too). ``ssl_options``: redis-py's
        ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` ... for a ``rediss://`` URL.
        ``keys``: the signing keys of this process; every entry published or committed to a
        stream it holds a key for is signed (:mod:`tm_common.bus.signing`)."""
        self.names = Streams(prefix)
        self.keys = keys or NO_KEYS
        self.r = client or aioredis.Redis.from_url(
            url, decode_responses=False, socket_connect_timeout=socket_timeout_s,
            health_check_interval=15, **ssl_options)
        self._commit = self.r.register_script(COMMIT)
        self._confirm = self.r.register_script(CONFIRM)
        self._publish = self.r.register_script(PUBLISH)
        self._take_over = self.r.register_script(TAKE_OVER)
        self._busy = self.r.register_script(BUSY)
        self._block_timeout = socket_timeout_s

    # -- helpers ---------------------------------------------------------------------------
    def key(self, stream: str) -> str:
        return self.names.key(stream)

    async def _call(self, coro: Awaitable[Any]) -> Any:
        """Await a redis-py call; its errors become ``TransportError``/``GroupMissing``
        (:func:`tm_common.errors_boundary.redis_error`)."""
        with redis_errors():
            return await coro

    # -- publishing ------------------------------------------------------------------------
    async def publish(self, stream: str, envelope: Envelope) -> str:
        return await self.publish_raw(stream, self.keys.fields(stream, envelope))

    async def publish_raw(self, stream: str, fields: dict[Any, Any]) -> str:
        """Append arbitrary fields (tools and tests)."""
        eid: bytes = await self._call(self.r.xadd(self.key(stream), fields, maxlen=maxlen(stream),
                                           approximate=True))
        return eid.decode()

    async def publish_many(self, outputs: Sequence[Output],
                           state: tuple[str, bytes] | None = None, *,
                           expect: bytes | None = None) -> list[str]:
        if state is not None and expect is not None:
            return await self._publish_checked(outputs, state, expect)
        async def run() -> list[Any]:
            async with self.r.pipeline(transaction=True) as p:
                for o in outputs:
                    fields = cast("dict[FieldT, EncodableT]", self.keys.fields(o.stream, o.envelope))
                    p.xadd(self.key(o.stream), fields, maxlen=maxlen(o.stream),
                           approximate=True)
                if state is not None:
                    p.set(state[0], state[1])
                return await p.execute()
        res = await self._call(run())
        return [i.decode() for i in res[: len(outputs)]]

    async def _publish_checked(self, outputs: Sequence[Output], state: tuple[str, bytes],
                               expect: bytes) -> list[str]:
        """``publish_many`` with ``expect``: one ``PUBLISH`` script (compare and set)."""
        keys = [self.key(o.stream) for o in outputs] + [state[0]]
        args: list[Any] = [len(outputs), expect, state[1]]
        for o in outputs:
            fields = self.keys.fields(o.stream, o.envelope)
            args += [maxlen(o.stream), len(fields)]
            for k, v in fields.items():
                args += [k, v]
        res = await self._call(self._publish(keys=keys, args=args))
        if res == -1:
            raise StateChanged(state[0])
        return [i.decode() for i in res]

    # -- consuming -------------------------------------------------------------------------
    async def ensure_group(self, stream: str, group: str) -> None:
        try:
            await self._call(self.r.xgroup_create(self.key(stream), group, id="0", mkstream=True))
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def read(self, group: str, consumer: str, streams: Sequence[str], *, pending: bool,
                   count: int, block_ms: int) -> list[Delivery]:
        start = "0" if pending else ">"
        keys: dict[KeyT, StreamIdT] = {self.key(s): start for s in streams}
        block = None if pending or block_ms <= 0 else block_ms
        reply = await self._call(self.r.xreadgroup(group, consumer, keys, count=count, block=block))
        out: list[Delivery] = []
        for key, entries in _pairs(reply):
            stream = self.names.logical(key.decode())
            counts = await self._delivery_counts(stream, group, entries) if pending else {}
            for eid, fields in entries:
                if fields is None:                 # trimmed while pending: just ack it
                    await self._call(self.r.xack(self.key(stream), group, eid))
                    continue
                e = eid.decode()
                out.append(Delivery(stream, e, fields, counts.get(e, 1)))
        return out

    async def _delivery_counts(self, stream: str, group: str,
                               entries: Sequence[Any]) -> dict[str, int]:
        if not entries:
            return {}
        first, last = entries[0][0], entries[-1][0]
        rows = await self._call(self.r.xpending_range(self.key(stream), group, min=first, max=last,
                                                      count=len(entries) + 10))
        return {r["message_id"].decode(): int(r["times_delivered"]) for r in rows}

    async def commit(self, group: str, consumer: str, delivery: Delivery,
                     outputs: Sequence[Output], state: tuple[str, bytes] | None = None,
                     fence: Fence | None = None) -> None:
        await self.commit_many(group, consumer, [(delivery, outputs)], state, fence)

    async def commit_many(self, group: str, consumer: str,
                          items: Sequence[tuple[Delivery, Sequence[Output]]],
                          state: tuple[str, bytes] | None = None,
                          fence: Fence | None = None) -> None:
        await self._atomic(group, consumer, [d for d, _ in items],
                           [(o.stream, self.keys.fields(o.stream, o.envelope))
                            for _, outputs in items for o in outputs], state, fence)

    async def dead_letter(self, group: str, consumer: str, delivery: Delivery, reason: str,
                          fence: Fence | None = None) -> None:
        await self._atomic(group, consumer, [delivery],
                           [(dlq(delivery.stream), dead_letter_fields(delivery, group, reason))],
                           None, fence)

    async def _atomic(self, group: str, consumer: str, ds: Sequence[Delivery],
                      outs: list[tuple[str, dict[Any, Any]]], state: tuple[str, bytes] | None,
                      fence: Fence | None) -> None:
        keys = [self.key(d.stream) for d in ds] + [self.key(s) for s, _ in outs]
        args: list[Any] = [group, consumer, len(ds), len(outs), "1" if state else "0",
                           state[1] if state else b"", "" if fence is None else fence[1],
                           *(d.entry_id for d in ds)]
        if state:
            keys.append(state[0])
        if fence is not None:
            keys.append(fence[0])
        for stream, fields in outs:
            args += [maxlen(stream), len(fields)]
            for k, v in fields.items():
                args += [k, v]
        res = await self._call(self._commit(keys=keys, args=args))
        if isinstance(res, list):
            assert fence is not None
            raise WriterSuperseded(group, fence[1], int(res[1]))
        if res == -1:
            raise LostOwnership(", ".join(d.entry_id for d in ds))

    async def acquire_generation(self, key: str) -> int:
        return int(await self._call(self.r.incr(key)))

    async def confirm_generation(self, key: str, generation: int) -> int | None:
        newer = int(await self._call(self._confirm(keys=[key], args=[generation])))
        return newer or None

    async def take_over(self, group: str, consumer: str, streams: Sequence[str]) -> int:
        keys = [self.key(s) for s in streams]
        return int(await self._call(self._take_over(keys=keys, args=[group, consumer])))

    async def reclaim(self, group: str, consumer: str, streams: Sequence[str],
                      min_idle_ms: int, count: int = 100) -> int:
        n = 0
        for s in streams:
            start = "0-0"
            while True:
                reply = await self._call(self.r.xautoclaim(self.key(s), group, consumer,
                                                           min_idle_ms, start, count=count))
                nxt, claimed = reply[0], reply[1]    # Redis 7 adds deleted ids as reply[2]
                n += len(claimed)
                if nxt in (b"0-0", "0-0") or not claimed:
                    break
                start = nxt
        return n

    async def load_state(self, key: str) -> bytes | None:
        value: bytes | None = await self._call(self.r.get(key))
        return value

    # -- inspection ------------------------------------------------------------------------
    async def group_info(self, stream: str) -> list[dict[str, Any]]:
        key = self.key(stream)
        try:
            groups = await self._call(self.r.xinfo_groups(key))
        except ResponseError:              # no such key yet
            return []
        newest = await self._newest_id(stream)
        out = []
        for g in groups:
            name = _s(g["name"])
            last = _s(g["last-delivered-id"])
            lag = g.get("lag")
            if not _undelivered(newest, last):
                lag = 0                           # see _undelivered: Redis 7's lag can be stale
            elif not lag:                         # Redis 6.2, or an unknown/stale 0: count them
                lag = len(await self._call(self.r.xrange(key, min=f"({last}", count=100_000)))
            out.append({"name": name, "consumers": int(g["consumers"]),
                        "pending": int(g["pending"]), "lag": int(lag)})
        return out

    async def _newest_id(self, stream: str) -> str | None:
        rows = await self._call(self.r.xrevrange(self.key(stream), count=1))
        return _s(rows[0][0]) if rows else None

    async def busy_groups(self, streams: Sequence[str]) -> list[str]:
        """Groups (on ``streams``) with undelivered or unacked entries, in one round trip (one
        script): a group has undelivered entries when the stream's newest entry is after the
        group's last-delivered id (Redis 7's ``lag`` is only shown, see :func:`_undelivered`).
        A user the script is refused to (an ACL file from before the script) gets the same
        answer from a pipeline of ``XINFO GROUPS`` and ``XREVRANGE``."""
        try:
            flat = await self._call(self._busy(keys=[self.key(st) for st in streams]))
        except ResponseError as e:
            if "NOPERM" not in str(e):
                raise
            return await self._busy_groups_piped(streams)
        return [f"{streams[int(flat[i]) - 1]}/{_s(flat[i + 1])} lag={int(flat[i + 2])} "
                f"pending={int(flat[i + 3])}" for i in range(0, len(flat), 4)]

    async def _busy_groups_piped(self, streams: Sequence[str]) -> list[str]:
        async def run() -> list[Any]:
            async with self.r.pipeline(transaction=False) as p:
                for st in streams:
                    p.xinfo_groups(self.key(st))
                    p.xrevrange(self.key(st), count=1)
                return await p.execute(raise_on_error=False)
        replies = await self._call(run())
        out = []
        for i, st in enumerate(streams):
            groups, newest_rows = replies[2 * i], replies[2 * i + 1]
            if isinstance(groups, Exception):       # no such key yet
                continue
            newest = _s(newest_rows[0][0]) if newest_rows and not isinstance(newest_rows, Exception) \
                else None
            for g in groups:
                pending = int(g["pending"])
                if _undelivered(newest, _s(g["last-delivered-id"])):
                    lag = g.get("lag") or 1           # at least one; Redis 7's count if it has one
                elif pending:
                    lag = 0
                else:
                    continue
                out.append(f"{st}/{_s(g['name'])} lag={lag} pending={pending}")
        return out

    async def length(self, stream: str) -> int:
        return int(await self._call(self.r.xlen(self.key(stream))))

    async def entries(self, stream: str, count: int = 10_000) -> list[tuple[str, dict[Any, Any]]]:
        rows = await self._call(self.r.xrange(self.key(stream), count=count))
        return [(eid.decode(), {_s(k): _s(v) for k, v in fields.items()}) for eid, fields in rows]

    async def ping(self) -> bool:
        """False when Redis is unreachable; raises :class:`TransportError` when it answers but
        refuses the credentials (a configuration error: ``/readyz`` then says why)."""
        try:
            return bool(await self.r.ping())
        except AuthenticationError as e:
            raise cast(TransportError, redis_error(e)) from e
        except (*_TRANSPORT_ERRORS, ResponseError):
            return False

    async def close(self) -> None:
        await self.r.aclose()


def _pairs(reply: Any) -> list[Any]:
    if not reply:
        return []
    if isinstance(reply, dict):                  # RESP3
        return list(reply.items())
    return [(k, v) for k, v in reply]


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _undelivered(newest: str | None, last_delivered: str) -> bool:
    """True when the stream holds an entry after the group's last-delivered id.

    This, not ``XINFO GROUPS`` ``lag``, says whether a group has work: Redis 7.0 restores a
    group's ``entries-read`` from the last AOF rewrite only, so after a restart it can report a
    lag for entries delivered (and acked) long ago, forever (the lockstep replay then waited for
    work nobody had; seen in the Redis fault drill)."""
    return newest is not None and _id_tuple(newest) > _id_tuple(last_delivered)


def _s(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)
