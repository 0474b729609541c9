"""The one reader of a finite ``Decimal`` from a venue's or a client's value (Bybit sends
amounts as strings): the executor's venue records and the exchange simulator's parameters."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Literal

from tm_common.errors import PermanentError


class NotADecimal(PermanentError, ValueError):
    """``value`` is not a finite decimal number (a retry will not change it); ``reason``:
    ``"not a number"`` or ``"not finite"`` (NaN, infinity)."""

    def __init__(self, value: object, reason: Literal["not a number", "not finite"]) -> None:
        super().__init__(f"{reason}: {value!r}")
        self.value, self.reason = value, reason


def finite_decimal(value: object) -> Decimal:
    """``Decimal(str(value))`` (a float through its shortest repr), exact, never rounded.

    Raises:
        NotADecimal: ``value`` does not parse, or parses to NaN or an infinity.
    """
    try:
        out = Decimal(str(value))
    except InvalidOperation as e:
        raise NotADecimal(value, "not a number") from e
    if not out.is_finite():
        raise NotADecimal(value, "not finite")
    return out
