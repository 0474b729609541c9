"""Position accounting as the venue books it (exact ``Decimal``), shared by the exchange simulator
and the portfolio so that both agree to the last decimal.

``entry_value`` is the exact cost basis, ``|size| x`` average entry price. A fill that reduces a
position removes the closed share of the cost basis, ``entry_value x closed / |size|`` rounded to
:data:`COST_QUANTUM`; the fill that closes the position removes the remainder, so a full close
realises exactly ``|size| x price - entry_value``. Every booked amount is then a finite decimal.
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)
#: The grid (USDT) a partial close's share of the cost basis is rounded to.
COST_QUANTUM = Decimal("1e-10")


def close_part(size: Decimal, entry_value: Decimal, signed: Decimal,
               price: Decimal) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Book the part of a fill that closes an opposite position.

    Args: ``size`` the signed position (base coin, long > 0); ``entry_value`` its cost basis
    (USDT); ``signed`` the fill's signed quantity (buy > 0); ``price`` the fill price.
    Returns ``(closed, realised, size, entry_value)``: the quantity closed (0 when the position
    is flat or on the fill's side), its price PnL (fees excluded: ``closed x price - removed``
    for a long, ``removed - closed x price`` for a short) and the position after the closing
    part. The rest of the fill, ``|signed| - closed``, opens on the fill's side.
    """
    if size == 0 or (size > 0) == (signed > 0):
        return ZERO, ZERO, size, entry_value
    closed = min(abs(size), abs(signed))
    if closed == abs(size):
        removed = entry_value
    else:  # a partial close takes a share of the cost basis, on a fixed grid
        removed = (entry_value * closed / abs(size)).quantize(COST_QUANTUM)
    exit_value = closed * price
    realised = exit_value - removed if size > 0 else removed - exit_value
    size += signed if abs(signed) <= abs(size) else -size
    return closed, realised, size, entry_value - removed
