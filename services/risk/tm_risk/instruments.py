"""Where risk gets the venue's lot filters (tick size, qty step, min/max quantity, max market
quantity, min notional): never a built-in table, always what the venue says.

Sources, the first configured wins (:func:`instrument_source`):

1. ``TM_RISK_INSTRUMENTS_FILE``: a recorded ``/v5/market/instruments-info`` answer (JSON: the
   whole V5 answer, its ``result``, or a list of entries), e.g. a snapshot of Bybit's;
2. the in-process venue ``build`` was given (the backtest): its ``get_instruments_info``;
3. ``TM_RISK_VENUE_REST_URL``: the venue's public ``GET /v5/market/instruments-info?category=
   linear`` (no key; the exchange simulator by default, Bybit testnet or mainnet), read at start
   and again every ``TM_RISK_INSTRUMENTS_REFRESH_S``.

Each load goes to :meth:`tm_risk.handler.RiskHandler.set_instruments`, the one hook through which
filters reach the rules; a change is logged and counted, and the next decision uses it. When the
executor publishes the venue's filters as an event, its consumer calls the same hook.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import structlog
from tm_common.errors import VenueUnavailable
from tm_common.instruments import InstrumentSpec, find_listed, specs_from_answer

log = structlog.get_logger("tm.risk.instruments")
PATH = "/v5/market/instruments-info"
PAGE_LIMIT = 1000
Specs = dict[str, InstrumentSpec]
__all__ = ["Specs", "fetch", "from_venue", "instrument_source", "load_file",
           "specs_from_answer"]     # specs_from_answer: tm_common.instruments' one parser


def load_file(path: str | Path) -> Specs:
    """The specs of a recorded answer (``TM_RISK_INSTRUMENTS_FILE``).

    Raises:
        ValueError: the file is missing, not JSON, or not an instruments-info answer (named).
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"TM_RISK_INSTRUMENTS_FILE {p}: {type(e).__name__}: {e}") from e
    return specs_from_answer(doc, str(p))


async def fetch(base_url: str, *, timeout_s: float = 10.0,
                client: httpx.AsyncClient | None = None, symbols: Iterable[str] = ()) -> Specs:
    """Every linear instrument the venue at ``base_url`` lists (pages followed by
    ``nextPageCursor``), and each of ``symbols`` that its default answer leaves out, looked up
    by status (:func:`~tm_common.instruments.find_listed`: Bybit lists only ``Trading``
    instruments by default, so a traded symbol being delisted would vanish, and a restarted
    risk would wait for its filters for ever).

    Raises:
        VenueUnavailable: transport failure, HTTP status != 200, a body that is not JSON.
        ValueError: retCode != 0 or a malformed entry.
    """
    what = f"{base_url.rstrip('/')}{PATH}"
    own = client is None
    http = client or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)
    out: Specs = {}
    cursor = ""
    try:
        for _ in range(100):                         # 100 pages of 1000: far beyond Bybit's list
            params: dict[str, str | int] = {"category": "linear", "limit": PAGE_LIMIT}
            if cursor:
                params["cursor"] = cursor
            doc = await _answer(http, what, params)
            out.update(specs_from_answer(doc, what))
            cursor = str((doc.get("result") or {}).get("nextPageCursor") or "")
            if not cursor:
                break
        async def ask(params: dict[str, str]) -> Specs:
            return specs_from_answer(await _answer(http, what, dict(params)), what)

        await _add_unlisted(out, symbols, ask)
    finally:
        if own:
            await http.aclose()
    return out


async def _answer(http: httpx.AsyncClient, what: str, params: dict[str, str | int]) -> Any:
    try:
        resp = await http.get(PATH, params=params)
    except httpx.HTTPError as e:
        raise VenueUnavailable(f"{what}: {type(e).__name__}: {e}") from e
    if resp.status_code != 200:
        raise VenueUnavailable(f"{what}: HTTP {resp.status_code}")
    try:
        return resp.json()
    except ValueError as e:
        raise VenueUnavailable(f"{what}: body is not JSON") from e


async def from_venue(venue: Any, symbols: Iterable[str] = ()) -> Specs:
    """The specs an in-process venue session (pybit's method names) answers, with each of
    ``symbols`` its default answer leaves out looked up by status, as :func:`fetch` does."""
    what = "in-process venue"

    async def ask(params: dict[str, str]) -> Specs:
        return specs_from_answer(venue.get_instruments_info(**params), what)

    out = specs_from_answer(venue.get_instruments_info(category="linear"), what)
    await _add_unlisted(out, symbols, ask)
    return out


async def _add_unlisted(out: Specs, symbols: Iterable[str],
                        ask: Callable[[dict[str, str]], Awaitable[Specs]]) -> None:
    """Each of ``symbols`` missing from ``out`` (a default answer), in whatever status."""
    for sym in [s for s in symbols if s not in out]:
        if (spec := await find_listed(sym, ask)) is not None:
            out[sym] = spec


Loader = Callable[[], Awaitable[Specs]]


def instrument_source(settings: Any, venue: Any = None) -> tuple[str, Loader]:
    """``(description, async load)`` of the first configured source (module docstring)."""
    if settings.instruments_file:
        path = settings.instruments_file

        async def from_file() -> Specs:
            return await asyncio.to_thread(load_file, path)
        return f"file {path}", from_file
    if venue is not None:
        async def in_process() -> Specs:
            return await from_venue(venue, settings.symbols)
        return "in-process venue", in_process
    url = settings.venue_rest_url

    async def from_url() -> Specs:
        return await fetch(url, timeout_s=settings.venue_timeout_s, symbols=settings.symbols)
    return f"venue {url}", from_url
