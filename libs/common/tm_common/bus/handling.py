"""Which handling of an entry a handler is in, for a handler whose side effect must not repeat.

The consumer marks each call of ``handler.handle`` (:func:`handling`); a handler asks
:func:`first_handling`. It is True only for the first call on an entry's first delivery: no
consumer has handled the entry before (a crash after a side effect, a lost commit, a batch undone
by a later entry's failure, a reclaim: each makes a later read of the entry count another
delivery) and this process has not tried it either (an in-process retry after a transient
error). Outside a consumer it is False, the safe answer: assume an earlier handling may have
acted. The executor sends a first handling's order without looking it up first
(``tm_executor.placement``); every other handling looks first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_FIRST: ContextVar[bool] = ContextVar("tm_bus_first_handling", default=False)


def first_handling() -> bool:
    """True while the entry in hand is handled for the first time anywhere (see module)."""
    return _FIRST.get()


@contextmanager
def handling(first: bool) -> Iterator[None]:
    """Mark the calls inside the block as a first handling (``first``) or a repeated one."""
    token = _FIRST.set(first)
    try:
        yield
    finally:
        _FIRST.reset(token)
