"""Bybit V5 public REST: kline backfill (``GET /v5/market/kline``, category linear, newest first),
settled funding rates (``GET /v5/market/funding/history``) and the ticker's marks
(``GET /v5/market/tickers``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import httpx
import structlog
from tm_common.errors import VenueUnavailable as VenueError
from tm_common.events import BarClosed, FundingRateUpdated, MarkUpdated
from tm_common.instruments import DELISTED_STATUSES, InstrumentSpec, find_listed
from tm_common.timefmt import utc_minute

from tm_ingest.domain.bars import INTERVAL_MS, BadBar, from_rest_row, order_and_dedupe
from tm_ingest.domain.funding import BadFunding, funding_from_rest_row
from tm_ingest.domain.marks import mark_from_ticker

log = structlog.get_logger("tm.ingest.rest")
PAGE_LIMIT = 1000
FUNDING_PAGE_LIMIT = 200
RATE_LIMIT_CODE = 10006


class RateLimited(VenueError):
    """Bybit said "too many requests" (HTTP 429 or retCode 10006): wait ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Listings(NamedTuple):
    """instruments-info's answer for the symbols asked: ``ended`` (symbol → why its listing
    has ended) and ``funding_interval_ms`` (of each symbol it lists)."""

    ended: dict[str, str]
    funding_interval_ms: dict[str, int]


def _retry_after_s(headers: httpx.Headers, now_ms: int | None = None) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds), else Bybit's ``X-Bapi-Limit-Reset-Timestamp``
    (ms); None when neither is readable."""
    import time

    try:
        if "retry-after" in headers:
            return max(0.0, float(headers["retry-after"]))
        if "x-bapi-limit-reset-timestamp" in headers:
            now = time.time() * 1000 if now_ms is None else now_ms
            return max(0.0, (int(headers["x-bapi-limit-reset-timestamp"]) - now) / 1000)
    except ValueError:
        return None
    return None


class BybitRestClient:
    """Paged kline backfill. ``on_bad_row(reason)`` is told about every row that is dropped."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0,
                 on_bad_row: Callable[[str], None] | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)
        self.on_bad_row = on_bad_row or (lambda reason: None)
        self.server_time_ms: int | None = None      # the ``time`` of the venue's last answer

    async def close(self) -> None:
        await self.http.aclose()

    async def _page(self, symbol: str, start_ms: int, end_ms: int) -> list:
        params: dict[str, str | int] = {"category": "linear", "symbol": symbol, "interval": "240",
                                        "start": start_ms, "end": end_ms, "limit": PAGE_LIMIT}
        return await self.get_list("/v5/market/kline", params, f"kline {symbol}")

    async def get_list(self, path: str, params: dict[str, str | int], what: str) -> list:
        """``result.list`` of a public V5 GET, checked; the answer's ``time`` (the venue's clock,
        ms) is kept in :attr:`server_time_ms` (None when the answer has none).

        Raises:
            RateLimited: HTTP 429 or retCode 10006 (``retry_after_s`` from the headers).
            VenueError: transport failure, HTTP error, a body that is not V5 JSON, retCode != 0.
        """
        try:
            resp = await self.http.get(path, params=params)
        except httpx.HTTPError as e:
            raise VenueError(f"{what}: {type(e).__name__}: {e}") from e
        if resp.status_code == 429:
            raise RateLimited(f"{what}: HTTP 429", _retry_after_s(resp.headers))
        if resp.status_code != 200:
            raise VenueError(f"{what}: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except (ValueError, RecursionError) as e:      # RecursionError: absurdly nested JSON
            ctype = resp.headers.get("content-type", "?").split(";")[0]
            raise VenueError(f"{what}: body is not JSON ({ctype}, "
                             f"{len(resp.content)} bytes)") from e
        if not isinstance(body, dict):
            raise VenueError(f"{what}: body is a JSON {_json_type(body)}, not an object")
        code = body.get("retCode")
        if isinstance(code, bool) or not isinstance(code, int):
            raise VenueError(f"{what}: " + ("no retCode" if code is None else
                             f"retCode is not an integer: {str(code)[:40]!r}"))
        if code == RATE_LIMIT_CODE:
            raise RateLimited(f"{what}: retCode {code}: {str(body.get('retMsg'))[:200]} (rate limited)",
                              _retry_after_s(resp.headers))
        if code != 0:
            raise VenueError(f"{what}: retCode {code}: {str(body.get('retMsg'))[:200]}")
        t = body.get("time")
        self.server_time_ms = t if isinstance(t, int) and not isinstance(t, bool) and t > 0 \
            else None
        result = body.get("result")
        rows = result.get("list") if isinstance(result, dict) else None
        if not isinstance(rows, list):
            detail = ("result is missing" if result is None else
                      f"result is a JSON {_json_type(result)}" if not isinstance(result, dict) else
                      "result.list missing" if rows is None else
                      f"result.list is a JSON {_json_type(rows)}")
            raise VenueError(f"{what}: {detail}")
        return rows

    async def listings(self, symbols: Sequence[str], now_ms: int) -> Listings:
        """What instruments-info says of ``symbols``: each one's funding interval, and why for
        each whose listing has ended: instruments-info says ``Delivering`` or ``Closed``, or
        its ``deliveryTime`` is at or before ``now_ms``.
        Bybit lists such a symbol only when a query names its status
        (:func:`tm_common.instruments.find_listed`). A symbol it lists in no status (removed
        long after its delisting, or never listed) is one too, provided the venue listed
        another of ``symbols``: a venue that lists none of them is not trusted to answer for
        any (its subscription will say).

        Raises:
            RateLimited, VenueError: as :meth:`get_list`.
        """
        async def ask(params: dict[str, str]) -> dict[str, dict]:
            rows = await self.get_list("/v5/market/instruments-info", dict(params),
                                       f"instruments-info {params['symbol']}")
            return {str(r.get("symbol")): r for r in rows if isinstance(r, dict)}

        out: dict[str, str] = {}
        intervals: dict[str, int] = {}
        unknown: list[str] = []
        for sym in symbols:
            row = await find_listed(sym, ask)
            if row is None:
                unknown.append(sym)
                continue
            try:
                spec = InstrumentSpec.from_info(row)
            except ValueError as e:
                raise VenueError(f"instruments-info {sym}: {e}") from e
            intervals[sym] = spec.funding_interval_ms
            if spec.status in DELISTED_STATUSES:
                out[sym] = f"status {spec.status}"
            elif 0 < spec.delivery_time_ms <= now_ms:
                out[sym] = f"delisted at {utc_minute(spec.delivery_time_ms)} UTC"
        if len(unknown) < len(symbols):
            out.update(dict.fromkeys(unknown, "not listed in any status"))
        return Listings(out, intervals)

    async def fetch_mark(self, symbol: str, at_ms: int) -> MarkUpdated:
        """The intra-bar mark of ``symbol`` (``GET /v5/market/tickers?category=linear&symbol=``),
        stamped ``at_ms`` (the caller's clock when it asked: the venue's own ``time`` is not
        used, since a simulator answers its wall time, not its market time).

        Raises:
            RateLimited, VenueError: as :meth:`get_list`; VenueError also when the answer holds
                no row for ``symbol``.
            tm_ingest.domain.marks.BadMark: the row is not a usable mark.
        """
        rows = await self.get_list("/v5/market/tickers", {"category": "linear", "symbol": symbol},
                                   f"ticker {symbol}")
        row = next((r for r in rows if isinstance(r, dict) and r.get("symbol") == symbol), None)
        if row is None:
            raise VenueError(f"ticker {symbol}: no row for {symbol} in {len(rows)} rows")
        return mark_from_ticker(symbol, row, at_ms)

    async def fetch_funding(self, symbol: str, start_ms: int, end_ms: int, *,
                            source: str = "live") -> list[FundingRateUpdated]:
        """Settled funding rates with ``start_ms <= settle_time_ms <= end_ms``, oldest first,
        each once (``GET /v5/market/funding/history``, pages of 200 newest first). Invalid rows
        are dropped with a reason (``on_bad_row``)."""
        out: dict[int, FundingRateUpdated] = {}
        cursor = end_ms
        while cursor >= start_ms:
            params: dict[str, str | int] = {"category": "linear", "symbol": symbol,
                                            "startTime": start_ms, "endTime": cursor,
                                            "limit": FUNDING_PAGE_LIMIT}
            rows = await self.get_list("/v5/market/funding/history", params, f"funding {symbol}")
            page: list[FundingRateUpdated] = []
            for row in rows:
                try:
                    page.append(funding_from_rest_row(symbol, row, source))
                except BadFunding as e:
                    self.on_bad_row(str(e))
                    log.warning("ingest.bad_funding_row", symbol=symbol, reason=str(e))
            if not page:
                break
            for f in page:
                if start_ms <= f.settle_time_ms <= end_ms:
                    out[f.settle_time_ms] = f
            oldest = min(f.settle_time_ms for f in page)
            if len(rows) < FUNDING_PAGE_LIMIT or oldest <= start_ms:
                break
            cursor = oldest - 1
        return [out[t] for t in sorted(out)]

    async def fetch(self, symbol: str, start_ms: int, end_ms: int, now_ms: int) -> list[BarClosed]:
        """Closed bars with ``start_ms <= open <= end_ms``, oldest first, each once.

        Pages go newest first; rows out of order, repeated or invalid are tolerated (invalid ones
        dropped with a reason). A bar still open by the venue's clock (the answer's ``time``) is
        never returned; ``now_ms`` (the caller's clock) decides only for an answer without a
        ``time``, so a host clock ahead of the venue cannot publish its forming bar, and one
        behind it does not hold back bars the venue has closed."""
        out: list[BarClosed] = []
        cursor = end_ms
        while cursor >= start_ms:
            rows = await self._page(symbol, start_ms, cursor)
            closed_by = self.server_time_ms if self.server_time_ms is not None else now_ms
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
                       and b.open_time_ms + INTERVAL_MS <= closed_by)
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
