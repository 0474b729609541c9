"""What both Bybit WebSocket clients (ingest's public, the executor's private) watch on a
connection: a read deadline, the venue's acknowledgements, and a jittered reconnect backoff.

- **read deadline**: nothing arrives (no topic message, no pong, no answer) for
  ``deadline_s`` (N x the ping interval): the connection is half-open (a NAT or proxy dropped it
  without a FIN); :func:`recv_within` aborts the transport and raises
  :class:`ReadDeadlineExceeded`;
- **acknowledgements**: an ``auth``/``subscribe`` answered with ``success`` other than ``true``
  raises :class:`SubscribeRefused` (or the caller's own error for auth);
- **jittered backoff**: :func:`jittered` spreads a reconnect over [0.5, 1] x the backoff (equal
  jitter), so many clients dropped together do not reconnect in lockstep.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tm_common.errors import TransientError


class ReadDeadlineExceeded(TransientError, TimeoutError):
    """Nothing arrived on the connection (no message, no pong) within the read deadline."""


class SubscribeRefused(TransientError, ConnectionError):
    """The venue answered the subscribe with ``success: false`` (its ``ret_msg`` is the text)."""


def jittered(backoff_s: float, rng: random.Random) -> float:
    """A reconnect wait: ``backoff_s`` x a uniform factor in [0.5, 1] (equal jitter)."""
    return backoff_s * rng.uniform(0.5, 1.0)


async def recv_within(ws: Any, stopper: asyncio.Future[Any], deadline_s: float,
                      what: str) -> str | bytes | None:
    """The next frame of ``ws`` (a ``websockets`` client connection); ``None`` once
    ``stopper`` is done. Nothing within ``deadline_s``: the transport is aborted (a half-open
    connection has no closing handshake to wait out) and :class:`ReadDeadlineExceeded` raised,
    its message ending with ``what`` (e.g. "3 ping intervals")."""
    recv = asyncio.ensure_future(ws.recv())
    done, _ = await asyncio.wait({recv, stopper}, timeout=deadline_s,
                                 return_when=asyncio.FIRST_COMPLETED)
    if recv not in done:
        recv.cancel()
        if stopper in done:
            return None
        ws.transport.abort()
        raise ReadDeadlineExceeded(f"no message or pong for {deadline_s:.1f} s ({what})")
    frame: str | bytes = recv.result()
    return frame


def refused(msg: dict[str, Any], op: str) -> str | None:
    """The venue's reason when ``msg`` answers ``op`` without ``success: true`` (None: the
    answer is a success, or not an answer to ``op``)."""
    if msg.get("op") != op or msg.get("success") is True:
        return None
    return str(msg.get("ret_msg") or f"{op} refused")[:200]
