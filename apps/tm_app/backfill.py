"""``tm backfill``: fill the database with Bybit's 4 h bars and settled funding rates, and
Deribit's daily BTC DVOL.

For a user who starts from an empty database (or whose ingest was down): pages through
``/v5/market/kline`` (interval 240, 1000 bars a page) and ``/v5/market/funding/history`` (200
rates a page), oldest page first, then Deribit's ``public/get_volatility_index_data`` (daily
closes, newest page first, following its ``continuation``), and upserts each page before asking
for the next. Without the DVOL a model trained on the database (``tm train --source db``) would
miss the DVOL features it has on the shipped files.

- **Resumable**: each symbol starts after its newest stored bar / rate (or at ``--since``), so an
  interrupted run continues where it stopped; history older than the oldest stored row (a
  database that live ingest filled first) is fetched from ``--since`` up to that row.
- **Idempotent**: rows are upserts on their natural keys; a rerun finds nothing new and adds
  nothing.
- **Rate-limited**: a "too many requests" answer (HTTP 429 or retCode 10006) waits for
  ``Retry-After`` / ``X-Bapi-Limit-Reset-Timestamp`` (else an exponential backoff) and asks again;
  a transient failure (5xx, timeout) is retried the same way, a few times.
- **Progress**: one line per page (symbol, table, time range, rows).

The base URLs are ingest's ``TM_INGEST_BYBIT_REST_URL`` and ``TM_INGEST_DERIBIT_URL`` (default
Bybit and Deribit mainnet, public endpoints only: no key is needed or read).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, NoReturn, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine
from tm_common.db import upsert
from tm_common.db.market import bar_span_ms, dvol_span_ms, funding_span_ms
from tm_common.errors import TradeMatrixError, VenueUnavailable
from tm_common.timefmt import utc_minute
from tm_ingest.domain.bars import INTERVAL_MS
from tm_ingest.repository import TABLES, bar_row, dvol_row, funding_row
from tm_ingest.sources.dvol import DAY_MS, DeribitDvolClient
from tm_ingest.sources.rest import BybitRestClient, RateLimited

KLINE_PAGE_BARS = 1000
FUNDING_INTERVAL_MS = 8 * 3600 * 1000
FUNDING_PAGE_RATES = 200
#: the DVOL the features read (``tm_quant.features``: BTC's implied volatility for every symbol)
DVOL_CURRENCY = "BTC"
T = TypeVar("T")


class BackfillError(TradeMatrixError):
    """The venue kept failing (or kept rate-limiting) past the retries; the message says which."""


@dataclass
class BackfillResult:
    """Rows written per ``(symbol, "bars"|"funding")`` and ``("BTC", "dvol")``; ``waits`` =
    rate-limit/backoff pauses."""

    rows: dict[tuple[str, str], int] = field(default_factory=dict)
    pages: int = 0
    waits: int = 0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


class Backfill:
    """One run over ``symbols`` from ``since_ms`` to ``until_ms`` (exclusive, capped at now).

    ``echo(line)``: progress and waits. ``sleep``: awaited for each pause (tests pass a fake).
    ``max_retries``: attempts per page before :class:`BackfillError`. ``dvol``: the Deribit
    client to fetch BTC DVOL with (None: no DVOL).
    """

    def __init__(self, engine: AsyncEngine, client: BybitRestClient, symbols: Sequence[str],
                 since_ms: int, until_ms: int | None = None, *,
                 echo: Callable[[str], None] = print,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 max_retries: int = 8, backoff_s: tuple[float, float] = (1.0, 60.0),
                 funding: bool = True, dvol: DeribitDvolClient | None = None) -> None:
        if until_ms is not None and until_ms <= since_ms:
            raise ValueError(f"--until ({utc_minute(until_ms)}) must be after "
                             f"--since ({utc_minute(since_ms)})")
        self.engine, self.client, self.symbols = engine, client, tuple(symbols)
        self.since_ms, self.until_ms = since_ms, until_ms
        self.echo, self.sleep, self.now_ms = echo, sleep, now_ms
        self.max_retries, self.backoff_s, self.with_funding = max_retries, backoff_s, funding
        self.dvol = dvol
        self.result = BackfillResult()

    async def run(self) -> BackfillResult:
        end = self.now_ms() if self.until_ms is None else min(self.until_ms, self.now_ms())
        for sym in self.symbols:
            await self._bars(sym, end)
            if self.with_funding:
                await self._funding(sym, end)
        if self.dvol is not None:
            for start, stop in await self._ranges(dvol_span_ms, DVOL_CURRENCY, end, DAY_MS):
                await self._dvol_range(self.dvol, start, stop)
        return self.result

    async def _ranges(self, span: Callable[..., Awaitable[tuple[int, int] | None]], sym: str,
                      end_ms: int, step_ms: int) -> list[tuple[int, int]]:
        """``[start, end)`` ranges still to fetch: before the oldest stored row, after the
        newest (the whole window when nothing is stored)."""
        async with self.engine.connect() as conn:
            stored = await span(conn, sym)
        if stored is None:
            return [(self.since_ms, end_ms)]
        oldest, newest = stored
        out = [(self.since_ms, min(oldest, end_ms))] if oldest > self.since_ms else []
        out.append((max(self.since_ms, newest + step_ms), end_ms))
        return [(a, b) for a, b in out if a < b]

    async def _bars(self, sym: str, end_ms: int) -> None:
        for start, end in await self._ranges(bar_span_ms, sym, end_ms, INTERVAL_MS):
            await self._bar_range(sym, start, end)

    async def _funding(self, sym: str, end_ms: int) -> None:
        for start, end in await self._ranges(funding_span_ms, sym, end_ms, 1):
            await self._funding_range(sym, start, end)

    async def _bar_range(self, sym: str, cursor: int, end_ms: int) -> None:
        cursor += -cursor % INTERVAL_MS                        # onto the 4 h grid
        now = self.now_ms()
        while cursor < end_ms:
            last = min(cursor + (KLINE_PAGE_BARS - 1) * INTERVAL_MS, end_ms - 1)
            page = await self._retry(f"{sym} bars",
                                     partial(self.client.fetch, sym, cursor, last, now))
            await self._write("bars", [bar_row(b) for b in page])
            self._progress(sym, "bars", cursor, last, len(page))
            cursor = last + 1
            cursor += -cursor % INTERVAL_MS

    async def _funding_range(self, sym: str, cursor: int, end_ms: int) -> None:
        while cursor < end_ms:
            last = min(cursor + FUNDING_PAGE_RATES * FUNDING_INTERVAL_MS - 1, end_ms - 1)
            page = await self._retry(f"{sym} funding", partial(
                self.client.fetch_funding, sym, cursor, last, source="backfill"))
            await self._write("funding", [funding_row(f) for f in page])
            self._progress(sym, "funding", cursor, last, len(page))
            cursor = last + 1

    async def _dvol_range(self, client: DeribitDvolClient, start_ms: int, end_ms: int) -> None:
        """Days in ``[start_ms, end_ms)``, newest page first: each answer's ``continuation`` is
        the next request's end, until there is none or it brings no older day."""
        cur, now = DVOL_CURRENCY, self.now_ms()
        last, oldest = end_ms - 1, end_ms
        while True:
            points, more = await self._retry(f"{cur} dvol", partial(
                client.fetch_page, cur, start_ms, last, now))
            points = [p for p in points if start_ms <= p.day_ms < oldest]
            await self._write("dvol", [dvol_row(p) for p in points])
            self._progress(cur, "dvol", points[0].day_ms if points else start_ms, last,
                           len(points))
            if not points or more is None or more <= start_ms:
                return
            oldest, last = points[0].day_ms, min(more, points[0].day_ms)

    async def _write(self, kind: str, rows: list[dict]) -> None:
        if not rows:
            return
        table, key = TABLES[kind]
        async with self.engine.begin() as conn:
            for i in range(0, len(rows), 500):
                await upsert(conn, table, rows[i:i + 500], key)

    def _progress(self, sym: str, kind: str, start_ms: int, last_ms: int, n: int) -> None:
        self.result.pages += 1
        self.result.rows[(sym, kind)] = self.result.rows.get((sym, kind), 0) + n
        self.echo(f"{sym} {kind:<7} {utc_minute(start_ms)} → {utc_minute(last_ms)}: {n:>4} rows "
                  f"(total {self.result.rows[(sym, kind)]})")

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        delay, cap = self.backoff_s
        for attempt in range(1, self.max_retries + 1):
            try:
                return await call()
            except RateLimited as e:
                wait = e.retry_after_s if e.retry_after_s is not None else delay
                reason = "rate limited"
                err: VenueUnavailable = e
            except VenueUnavailable as e:
                wait, reason, err = delay, "venue error", e
            if attempt == self.max_retries:
                raise BackfillError(f"{what}: gave up after {attempt} attempts: {err}") from err
            wait = min(max(wait, 0.0), cap)
            self.result.waits += 1
            self.echo(f"{what}: {reason} ({err}); waiting {wait:.1f}s, then resuming")
            await self.sleep(wait)
            delay = min(delay * 2, cap)
        raise AssertionError("unreachable")


def backfill_command(
    since: Annotated[str, typer.Option(help="First day to fetch, YYYY-MM-DD (UTC) or epoch ms.")],
    until: Annotated[str | None, typer.Option(help="Stop before this day (default: now).")] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated (default TM_SYMBOLS).")] = None,
    url: Annotated[str | None, typer.Option(help="Bybit REST base URL (default "
                                            "TM_INGEST_BYBIT_REST_URL: mainnet).")] = None,
    funding: Annotated[bool, typer.Option("--funding/--no-funding",
                                          help="Also fetch settled funding rates.")] = True,
    dvol: Annotated[bool, typer.Option("--dvol/--no-dvol",
                                       help="Also fetch Deribit's daily BTC DVOL.")] = True,
    deribit_url: Annotated[str | None, typer.Option(help="Deribit base URL (default "
                                                    "TM_INGEST_DERIBIT_URL: mainnet).")] = None,
    retries: Annotated[int, typer.Option(min=1, help="Attempts per page before giving up "
                                         "(waits double from 1 s, at most 60 s).")] = 8,
) -> None:
    """Fill the database with Bybit 4 h bars and funding, and Deribit's BTC DVOL, from --since
    (resumable, idempotent)."""
    from pydantic import ValidationError
    from tm_common.db import make_engine, resolve_database_url
    from tm_common.db.migrate import migrate_async
    from tm_common.instruments import parse_symbols
    from tm_common.settings import settings_error
    from tm_ingest.config import IngestSettings

    from tm_app.demo import parse_day_ms

    def fail(message: str, code: int = 1) -> NoReturn:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(code)

    try:
        settings = IngestSettings()
    except ValidationError as e:
        fail(f"bad configuration: {settings_error(IngestSettings, e)}", 2)
    try:
        since_ms = parse_day_ms(since.strip())
        until_ms = None if until is None else parse_day_ms(until.strip())
        syms = parse_symbols(symbols) if symbols else tuple(settings.symbols)
        base = (url or settings.bybit_rest_url).strip()
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"--url must be an http(s) URL, not {base!r}")
        deribit = (deribit_url or settings.deribit_url).strip()
        if dvol and not deribit.startswith(("http://", "https://")):
            raise ValueError(f"--deribit-url must be an http(s) URL, not {deribit!r}")
    except ValueError as e:
        fail(str(e), 2)

    async def go() -> BackfillResult:
        db_url = resolve_database_url(settings)
        await migrate_async(db_url)
        engine = make_engine(db_url)
        client = BybitRestClient(base, timeout_s=30.0)
        dvol_client = DeribitDvolClient(deribit, timeout_s=30.0) if dvol else None
        try:
            job = Backfill(engine, client, syms, since_ms, until_ms, echo=typer.echo,
                           funding=funding, max_retries=retries, dvol=dvol_client)
            return await job.run()
        finally:
            await client.close()
            if dvol_client is not None:
                await dvol_client.close()
            await engine.dispose()

    typer.echo(f"backfill {', '.join(syms)}{' and BTC DVOL' if dvol else ''} from "
               f"{utc_minute(since_ms)} to {'now' if until_ms is None else utc_minute(until_ms)} "
               f"({base}{', ' + deribit if dvol else ''})")
    try:
        res = asyncio.run(go())
    except ValueError as e:
        fail(str(e), 2)
    except (BackfillError, VenueUnavailable) as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot reach the database: {e}")
    except Exception as e:  # noqa: BLE001 - any other failure: one line, not a traceback
        first = (str(e).splitlines() or [""])[0][:300]
        if type(e).__module__.startswith(("sqlalchemy", "asyncpg", "sqlite3", "alembic")):
            fail(f"database error: {type(e).__name__}: {first}")
        fail(f"{type(e).__name__}: {first}")
    per = ", ".join(f"{s} {k} {n}" for (s, k), n in sorted(res.rows.items()))
    typer.echo(f"done: {res.total} rows in {res.pages} pages ({res.waits} waits): {per or 'nothing new'}")
