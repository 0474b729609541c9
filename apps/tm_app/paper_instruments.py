"""The paper venue's instruments are the market's: ``tm paper`` reads Bybit's public
instruments-info (the REST URL ingest reads its prices from) for the traded symbols when it
starts, and the relay reads it again every hour (:class:`tm_app.paper_relay.BarRelay`), so the
paper venue lists what the market lists, with its lot filters, funding interval, delisting time
and status. A symbol the project does not ship can be paper-traded, a changed qty step reaches
risk and the executor through the paper venue as it would through Bybit, and a delisting Bybit
announces is carried out on the paper book.

The newest answer is kept in ``<data>/paper/instruments.json`` (:data:`INSTRUMENTS_FILE`): the
paper venue reads it when it (re)starts, the shadow book whenever it is rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
from tm_common.errors import ConfigError
from tm_common.files import replace_file
from tm_common.instruments import InstrumentSpec, find_listed, specs_from_answer

INSTRUMENTS_PATH = "/v5/market/instruments-info"
INSTRUMENTS_FILE = "instruments.json"       # in the paper run's folder


class MarketInstrumentsError(ConfigError, ValueError):
    """The market answered, and not with the symbol's instrument: not listed (a configured
    symbol to fix), or malformed."""


async def fetch_specs(rest_url: str, symbols: Iterable[str], *,
                      timeout_s: float = 10.0) -> dict[str, InstrumentSpec]:
    """symbol → the market's spec of each of ``symbols`` (one query per symbol).

    Raises:
        MarketInstrumentsError: a symbol the market does not list, or an answer that does not
            parse (both named).
        httpx.HTTPError: the market could not be reached or answered an HTTP error.
    """
    out: dict[str, InstrumentSpec] = {}
    async with httpx.AsyncClient(base_url=rest_url, timeout=timeout_s) as http:
        async def ask(params: dict[str, str]) -> dict[str, InstrumentSpec]:
            r = await http.get(INSTRUMENTS_PATH, params=params)
            r.raise_for_status()
            try:
                return specs_from_answer(r.json(), str(r.url))
            except ValueError as e:       # not JSON, retCode != 0, or an entry refused
                raise MarketInstrumentsError(str(e)) from e

        for sym in symbols:
            spec = await find_listed(sym, ask)
            if spec is None:
                raise MarketInstrumentsError(
                    f"the market does not list {sym} as a linear perpetual in any status "
                    f"({rest_url}{INSTRUMENTS_PATH}?category=linear&symbol={sym})")
            out[sym] = spec
    return out


def answer(specs: Mapping[str, InstrumentSpec]) -> dict[str, Any]:
    """The instruments-info answer listing ``specs``: what the paper venue's instruments file
    and ``POST /sim/instruments`` read."""
    return {"retCode": 0, "retMsg": "OK", "result": {
        "category": "linear", "list": [specs[s].info() for s in sorted(specs)]}}


def write_answer(path: Path, doc: Mapping[str, Any]) -> None:
    """Write an instruments-info answer to ``path`` whole or not at all (a temporary file
    renamed over it), so a reader never sees half of one."""
    replace_file(path, json.dumps(doc, indent=2), sync=True)


def read_answer(path: Path) -> dict[str, InstrumentSpec] | None:
    """The specs of the answer at ``path``; None when there is no file or it does not parse
    (whoever reads it then asks the market)."""
    try:
        return specs_from_answer(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, ValueError):
        return None
