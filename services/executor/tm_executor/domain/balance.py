"""The venue's USDT wallet balance against the portfolio's cash (pure: values in, a verdict out).

The portfolio's cash (``initial + transfers + realised - fees - funding``) is what the venue's
wallet balance is, once both have seen the same effects. A difference then is money that moved
outside the mesh (a deposit or withdrawal, an account whose balance is not the configured
``TM_PORTFOLIO_INITIAL_EQUITY_USDT``, a fee or PnL of a trade the mesh never saw) and is adopted
as an external flow (``BalanceReconciled``).

When the two have *not* seen the same effects, the comparison is skipped. The reconciler's own
rules cover fills and reconciliations (nothing in flight, no fill or flow on ``exec.report``
newer than the newest snapshot). Funding is accounted for rather than waited out, since a
symbol whose funding interval is the bar's settles at every snapshot's close: snapshot ``t``
holds the settlements booked before it was taken with a stamp at or before ``t``'s open, so the
ones published after it, or stamped after that open, are in the wallet and not in the snapshot
(:func:`pending_funding` adds them back). A settlement the executor has not published yet (it
does so when it handles the bar that closes at it) is in neither: :func:`funding_unpublished`
names it and the comparison waits. A symbol flat on the venue and in the snapshot pays no
funding and is not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


def usdt_balance(wallet: Mapping[str, Any]) -> Decimal:
    """The USDT ``walletBalance`` of a UNIFIED wallet-balance entry (cash: realised PnL, fees
    and funding in, unrealised PnL out); ``ValueError`` when the entry has no USDT coin."""
    for coin in wallet.get("coin") or ():
        if coin.get("coin") == "USDT":
            return Decimal(str(coin.get("walletBalance") or "0"))
    raise ValueError("the wallet-balance answer has no USDT coin")


def funding_unpublished(symbols: Iterable[str], *, venue_now_ms: int,
                        intervals_ms: Mapping[str, int], asked_ms: Mapping[str, int],
                        held: set[str]) -> str | None:
    """Why the wallet may hold a settlement the executor has not published (None: none).

    ``intervals_ms``: each symbol's funding interval; ``asked_ms``: the funding time up to which
    the executor asked the venue (its handler state); ``held``: symbols with a position on the
    venue or in the snapshot."""
    for sym in sorted(symbols):
        if sym not in held:
            continue
        interval = intervals_ms[sym]
        newest = venue_now_ms // interval * interval
        if asked_ms.get(sym, -1) < newest:
            return f"{sym}: funding settled at {newest} not published yet"
    return None


def pending_funding(settlements: Iterable[tuple[tuple[int, int], str, int, Decimal]], *,
                    snapshot_entry: tuple[int, int], snapshot_open_ms: int) -> Decimal:
    """The funding paid (> 0) that is in the wallet and not in the snapshot: of the published
    settlements ``(entry id key, instrument, settle time ms, payment)``, those published after
    the snapshot or stamped after its open, each ``(instrument, settle time)`` once."""
    seen: set[tuple[str, int]] = set()
    total = ZERO
    for _, instrument, settle_ms, payment in sorted(
            (s for s in settlements if s[0] > snapshot_entry or s[2] > snapshot_open_ms),
            key=lambda s: s[0]):
        if (instrument, settle_ms) not in seen:
            seen.add((instrument, settle_ms))
            total += payment
    return total


def difference(venue_balance: Decimal, portfolio_cash: Decimal,
               tolerance: Decimal) -> Decimal | None:
    """``venue_balance - portfolio_cash`` when it is larger than ``tolerance`` in size."""
    diff = venue_balance - portfolio_cash
    return diff if abs(diff) > tolerance else None
