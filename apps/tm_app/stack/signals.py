"""Stop requests from outside (SIGTERM from ``tm down`` or ``kill``, SIGHUP when the terminal
closes, SIGINT from Ctrl-C) turned into an exception, so that the ``finally`` blocks of a run stop
every child process group before the process exits.

Without this a ``tm demo`` killed by SIGTERM or SIGHUP dies at once (the default action) and its
services, each in its own session, keep running with nobody left to stop them.
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from tm_common.errors import TradeMatrixError

if TYPE_CHECKING:
    from tm_common.settings import CommonSettings

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

#: The stop signals this process received (first first).
received: list[int] = []


class StopRequested(TradeMatrixError, RuntimeError):
    """A stop signal arrived; raised once, in the main thread, where the signal landed."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def stop_on_signals(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block the first of ``signals`` raises :class:`StopRequested`; later ones are
    ignored (the stop in progress must not be interrupted). The previous handlers come back on
    exit. Outside the main thread (signals land only there) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        first = not received
        received.append(signum)
        if first:
            raise StopRequested(signum)

    received.clear()
    previous = {s: signal.signal(s, on_signal) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stopped_by_signal() -> bool:
    """``True`` once a stop signal arrived inside :func:`stop_on_signals`."""
    return bool(received)


def stop_embedded_redis_if_signalled(settings: CommonSettings) -> None:
    """At exit: if this process was stopped by a signal, stop the embedded Redis of
    ``settings.data_dir`` too, unless another ``tm`` process still uses it (``tm up``'s
    supervisor, another run: :func:`tm_common.embedded.hold_embedded_redis`)."""
    def at_exit() -> None:
        if not stopped_by_signal():
            return
        from tm_common.embedded import leave_embedded_redis

        leave_embedded_redis(settings)
    atexit.register(at_exit)
