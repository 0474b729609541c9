"""Column types that behave the same on PostgreSQL and SQLite.

SQLite has no exact decimal type: a ``NUMERIC`` column converts ``Decimal('0.1')`` to a binary
float. :class:`ExactDecimal` is ``NUMERIC`` (arbitrary precision) on PostgreSQL and ``VARCHAR``
holding the decimal's string on SQLite, so money and quantities round-trip to the last digit on
both. Consequence on SQLite: SQL arithmetic and ordering on these columns are textual; do money
arithmetic in Python with ``Decimal``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class ExactDecimal(sa.types.TypeDecorator[Decimal]):
    """An exact decimal column: PostgreSQL ``NUMERIC``, SQLite text. Python side: ``Decimal``.

    Accepts ``Decimal``, ``int`` and ``str`` on write (``float`` is refused: it is not exact).
    """

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(64))
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("ExactDecimal refuses float (not exact); pass Decimal or str")
        value = value if isinstance(value, Decimal) else Decimal(str(value))
        if not value.is_finite():
            raise ValueError(f"ExactDecimal refuses non-finite value {value}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON on every dialect, ``JSONB`` on PostgreSQL (indexable, compact)."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)  # decimals travel as strings, as on the bus
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_dumps(obj: Any) -> str:
    """The engines' JSON serialiser: compact, ``Decimal`` → string, sorted keys (stable hashes)."""
    return json.dumps(obj, default=_default, separators=(",", ":"), sort_keys=True)
