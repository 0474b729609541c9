"""Deribit DVOL poller: ``public/get_volatility_index_data`` (daily resolution)."""

from __future__ import annotations

import httpx
from tm_common.events import DvolUpdated

from tm_ingest.sources.rest import VenueError

DAY_MS = 86_400_000


class DeribitDvolClient:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self.http = client or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    async def fetch(self, currency: str, start_ms: int, end_ms: int, now_ms: int) -> list[DvolUpdated]:
        """Daily DVOL closes whose day has ended by ``now_ms`` (a day D is known at D+1 00:00)."""
        return (await self.fetch_page(currency, start_ms, end_ms, now_ms))[0]

    async def fetch_page(self, currency: str, start_ms: int, end_ms: int,
                         now_ms: int) -> tuple[list[DvolUpdated], int | None]:
        """One answer: :meth:`fetch`'s days and Deribit's ``continuation``, the
        ``end_timestamp`` of the next (older) page when the span held more days than one
        answer gives (None: no more)."""
        params: dict[str, str | int] = {"currency": currency, "start_timestamp": start_ms,
                                        "end_timestamp": end_ms, "resolution": "1D"}
        try:
            resp = await self.http.get("/api/v2/public/get_volatility_index_data", params=params)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as e:
            raise VenueError(f"dvol {currency}: {type(e).__name__}: {e}") from e
        if resp.status_code != 200 or not isinstance(body, dict) or "result" not in body:
            raise VenueError(f"dvol {currency}: HTTP {resp.status_code}: {str(body)[:200]}")
        out = []
        result = body["result"] or {}
        more = result.get("continuation")
        try:
            continuation = None if more is None else int(more)
        except (TypeError, ValueError) as e:
            raise VenueError(f"dvol {currency}: bad continuation {more!r}") from e
        for row in result.get("data") or []:
            # [timestamp, open, high, low, close]
            try:
                day, close = int(row[0]), float(row[4])
            except (TypeError, ValueError, IndexError) as e:
                raise VenueError(f"dvol {currency}: bad row {row!r}") from e
            day = day - day % DAY_MS
            if day + DAY_MS <= now_ms:
                out.append(DvolUpdated(currency=currency, day_ms=day, known_at_ms=day + DAY_MS,
                                       value=close))
        return sorted({d.day_ms: d for d in out}.values(), key=lambda d: d.day_ms), continuation


class DvolPoller:
    """Polls DVOL every ``interval_s`` and publishes the days that became known."""

    def __init__(self, client: DeribitDvolClient, publish, *, currency: str = "BTC",
                 interval_s: float = 300.0, clock_ms=None) -> None:
        import time

        self.client, self.publish, self.currency, self.interval_s = client, publish, currency, interval_s
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.errors = 0

    async def poll_once(self) -> int:
        now = self.clock_ms()
        points = await self.client.fetch(self.currency, now - 7 * DAY_MS, now, now)
        return len(await self.publish(points))

    async def run(self) -> None:
        import asyncio

        import structlog

        log = structlog.get_logger("tm.ingest.dvol")
        while True:
            try:
                await self.poll_once()
            except VenueError as e:
                self.errors += 1
                log.warning("ingest.dvol_failed", error=str(e))
            await asyncio.sleep(self.interval_s)
