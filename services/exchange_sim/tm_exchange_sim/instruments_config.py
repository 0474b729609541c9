"""Which filters the sim serves and enforces for each of its symbols.

For each symbol, the first of:

1. an entry of the instruments file (``TM_SIM_INSTRUMENTS_FILE``): JSON in the shape of Bybit's
   ``/v5/market/instruments-info`` answer: the whole answer, its ``result``, or the bare
   ``list``, so that a recorded snapshot of Bybit's real answer is used as it is
   (``services/exchange_sim/instruments/`` ships one for BTC/ETH/SOL and Bybit's documented
   BTCUSDT example);
2. the shipped table (:data:`tm_common.instruments.DEFAULT_INSTRUMENTS`, which risk reads too);
3. filters derived from the symbol's first history close
   (:func:`tm_common.instruments.derived_spec`), so that any USDT perpetual with a history runs.

A symbol with none of these is refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from tm_common.instruments import (
    DEFAULT_INSTRUMENTS,
    InstrumentSpec,
    derived_spec,
    specs_from_answer,
)

from tm_exchange_sim.matching import Instrument


def parse_instruments(doc: Any, *, source: str = "instruments") -> dict[str, InstrumentSpec]:
    """The specs in an instruments-info answer, its ``result`` or its ``list``
    (:func:`tm_common.instruments.specs_from_answer`, the parser risk uses too).

    Raises:
        ValueError: not that shape, a linear entry that does not parse (named), or an answer
            whose retCode is not 0.
    """
    return specs_from_answer(doc, source)


def load_instruments_file(path: str | Path) -> dict[str, InstrumentSpec]:
    """:func:`parse_instruments` of a JSON file.

    Raises:
        ValueError: unreadable, not JSON, or not the shape above (the path named).
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"instruments file {path}: {type(e).__name__}: {e}") from e
    return parse_instruments(doc, source=f"instruments file {path}")


def resolve_instruments(symbols: Iterable[str], configured: Mapping[str, InstrumentSpec],
                        reference_price: Callable[[str], Decimal | None]
                        ) -> dict[str, Instrument]:
    """Each symbol's :class:`Instrument` by the order above; ``reference_price(symbol)`` is
    its first history close (``None`` without history).

    Raises:
        ValueError: the symbols with no specification, named.
    """
    out: dict[str, Instrument] = {}
    missing: list[str] = []
    for symbol in symbols:
        spec = configured.get(symbol) or DEFAULT_INSTRUMENTS.get(symbol)
        if spec is None:
            price = reference_price(symbol)
            if price is None:
                missing.append(symbol)
                continue
            spec = derived_spec(symbol, price)
        out[symbol] = Instrument.of(spec)
    if missing:
        raise ValueError(f"no instrument specification for {missing}: add it to the "
                         "instruments file (TM_SIM_INSTRUMENTS_FILE) or give the symbol a "
                         "history to derive it from")
    return out
