"""Bybit V5 REST kline backfill (``GET /v5/market/kline``, category linear, newest first)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import structlog
from tm_common.errors import VenueUnavailable as VenueError
from tm_common.events import BarClosed

from tm_ingest.domain.bars import INTERVAL_MS, BadBar, from_rest_row, order_and_dedupe

log = structlog.get_logger("tm.ingest.rest")
PAGE_LIMIT = 1000


class BybitRestClient:
    """Paged kline backfill. ``on_bad_row(reason)`` is told about every row that is dropped."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0,
                 on_bad_row: Callable[[str], None] | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)
        self.on_bad_row = on_bad_row or (lambda reason: None)

    async def close(self) -> None:
        await self.http.aclose()

    async def _page(self, symbol: str, start_ms: int, end_ms: int) -> list:
        params: dict[str, str | int] = {"category": "linear", "symbol": symbol, "interval": "240",
                                        "start": start_ms, "end": end_ms, "limit": PAGE_LIMIT}
        try:
            resp = await self.http.get("/v5/market/kline", params=params)
        except httpx.HTTPError as e:
            raise VenueError(f"kline {symbol}: {type(e).__name__}: {e}") from e
        if resp.status_code != 200:
            raise VenueError(f"kline {symbol}: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except (ValueError, RecursionError) as e:      # RecursionError: absurdly nested JSON
            ctype = resp.headers.get("content-type", "?").split(";")[0]
            raise VenueError(f"kline {symbol}: body is not JSON ({ctype}, "
                             f"{len(resp.content)} bytes)") from e
        if not isinstance(body, dict):
            raise VenueError(f"kline {symbol}: body is a JSON {_json_type(body)}, not an object")
        code = body.get("retCode")
        if isinstance(code, bool) or not isinstance(code, int):
            raise VenueError(f"kline {symbol}: " + ("no retCode" if code is None else
                             f"retCode is not an integer: {str(code)[:40]!r}"))
        if code != 0:
            raise VenueError(f"kline {symbol}: retCode {code}: {str(body.get('retMsg'))[:200]}")
        result = body.get("result")
        rows = result.get("list") if isinstance(result, dict) else None
        if not isinstance(rows, list):
            what = ("result is missing" if result is None else
                    f"result is a JSON {_json_type(result)}" if not isinstance(result, dict) else
                    "result.list missing" if rows is None else
                    f"result.list is a JSON {_json_type(rows)}")
            raise VenueError(f"kline {symbol}: {what}")
        return rows

    async def fetch(self, symbol: str, start_ms: int, end_ms: int, now_ms: int) -> list[BarClosed]:
        """Closed bars with ``start_ms <= open <= end_ms``, oldest first, each once.

        Pages go newest first; rows out of order, repeated or invalid are tolerated (invalid ones
        dropped with a reason); a bar still open at ``now_ms`` is never returned."""
        out: list[BarClosed] = []
        cursor = end_ms
        while cursor >= start_ms:
            rows = await self._page(symbol, start_ms, cursor)
            page: list[BarClosed] = []
            for row in rows:
                try:
                    page.append(from_rest_row(symbol, row))
                except BadBar as e:
                    self.on_bad_row(str(e))
                    log.warning("ingest.bad_row", symbol=symbol, reason=str(e))
            if not page:
                break
            oldest = min(b.open_time_ms for b in page)
            out.extend(b for b in page if start_ms <= b.open_time_ms <= end_ms
                       and b.open_time_ms + INTERVAL_MS <= now_ms)
            if len(rows) < PAGE_LIMIT or oldest <= start_ms:
                break
            cursor = oldest - INTERVAL_MS
        return order_and_dedupe(out)


def _json_type(v: object) -> str:
    """The JSON name of a decoded value's type (for error messages)."""
    if v is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(v), type(v).__name__)
