"""A consumer process for delivery tests: ``python -m tm_common.testing.bus_worker``.

Runs :class:`CountingHandler` over stream ``in`` on Redis. Environment:
``W_URL``, ``W_PREFIX``, ``W_CONSUMER``, ``W_SLEEP_S`` (per-event work), ``W_CRASH`` =
``before:<open_time_ms>`` (``os._exit`` inside the handler, before commit) or
``after:<open_time_ms>`` (right after the commit of that input), ``W_IDLE_EXIT`` = 1 to exit when
nothing is left, ``W_RECLAIM_MS`` (reclaim idle threshold), ``W_BATCH`` (entries per commit,
default 1). SIGTERM stops it gracefully (exit 0).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence

import structlog

from tm_common.bus import Consumer
from tm_common.bus.protocol import Delivery, Fence, Output
from tm_common.bus.redis import RedisStreamsBus
from tm_common.events import Envelope
from tm_common.testing.counting import CountingHandler


class _CrashAfterCommit(RedisStreamsBus):
    crash_at: int | None = None

    async def commit_many(self, group: str, consumer: str,
                          items: Sequence[tuple[Delivery, Sequence[Output]]],
                          state: tuple[str, bytes] | None = None,
                          fence: Fence | None = None) -> None:
        # commit() of one entry goes through here too (a batch of one)
        await super().commit_many(group, consumer, items, state, fence)
        if self.crash_at is not None and any(
                getattr(o.envelope.body, "bar_time_ms", None) == self.crash_at
                for _, outputs in items for o in outputs[:1]):
            os._exit(18)


async def main() -> int:
    env = os.environ
    # The consumer's log lines go to stderr: stdout is the protocol the tests read.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    mode, _, at = env.get("W_CRASH", "").partition(":")
    bus = _CrashAfterCommit(env["W_URL"], prefix=env["W_PREFIX"])
    if mode == "after":
        bus.crash_at = int(at)

    def hook(ev: Envelope, n: int) -> None:
        if mode == "before" and getattr(ev.body, "open_time_ms", None) == int(at):
            os._exit(17)
    handler = CountingHandler(sleep_s=float(env.get("W_SLEEP_S", "0")), hook=hook)
    c = Consumer(bus, handler, group="g", consumer=env.get("W_CONSUMER", "c1"), streams=["in"],
                 state_key=env["W_PREFIX"] + "state:g", block_ms=100,
                 reclaim_idle_ms=int(env.get("W_RECLAIM_MS", "30000")), reclaim_interval_s=0.2,
                 commit_batch=int(env.get("W_BATCH", "1")), commit_batch_s=60.0)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, c.stop)
    await c.start()
    print("ready", flush=True)
    if env.get("W_IDLE_EXIT") == "1":
        await c._maybe_reclaim()
        await c.run_until_idle()
    else:
        await c.run()
    await bus.close()
    print(f"handled {c.handled_count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
