"""The operator's commands: ``tm kill``, ``tm breaker trip|reset`` (the risk service's admin
endpoints) and ``tm audit`` (the audit trail).

A kill and a reset need a non-blank ``--reason``: it is stored with the command, in the breaker's
transition and in the audit trail, beside who gave it (the admin token's name and this user,
sent as ``X-TM-Actor``). Errors are one line and a non-zero exit (``tm_app.cli.fail``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from tm_app.cli import _settings, console, fail

RISK_URL = "http://127.0.0.1:8105"
UrlOpt = Annotated[str, typer.Option(help="The risk service's base URL.")]

breaker_app = typer.Typer(name="breaker", help="Trip or reset the circuit breaker (risk service).",
                          no_args_is_help=True)


def _reason(reason: str, action: str) -> str:
    if not reason.strip():
        fail(f"{action}: --reason must not be empty (say why: it goes into the audit trail)", 2)
    return reason.strip()


def _post(action: str, url: str, reason: str) -> None:
    import httpx
    from tm_common.audit import cli_user

    token = _settings().admin_token
    if token is None:
        fail("TM_ADMIN_TOKEN is not set", 2)
    try:
        r = httpx.post(f"{url.rstrip('/')}/breaker/{action}", json={"reason": reason},
                       headers={"Authorization": f"Bearer {token.get_secret_value()}",
                                "X-TM-Actor": cli_user()}, timeout=10)
    except httpx.HTTPError as e:
        fail(f"risk service unreachable at {url}: {type(e).__name__}")
    if r.status_code >= 400:
        fail(f"HTTP {r.status_code}: {r.text[:200]}")
    console.print(r.json())


@breaker_app.command("trip")
def breaker_trip(reason: Annotated[str, typer.Option(help="Why.")] = "manual",
                 url: UrlOpt = RISK_URL) -> None:
    """Trip the breaker: flatten and hold OPEN until `tm breaker reset` (no cool-down)."""
    _post("trip", url, reason)


@breaker_app.command("reset")
def breaker_reset(reason: Annotated[str, typer.Option(help="Why it is safe to trade again "
                                                      "(required; audited).")],
                  url: UrlOpt = RISK_URL) -> None:
    """Close the breaker (lifts a kill, a manual trip or a loss-limit hold; a loss-limit reset
    rebases that limit's baseline with this reason)."""
    _post("reset", url, _reason(reason, "reset"))


def kill(reason: Annotated[str, typer.Option(help="Why (required; audited).")],
         url: UrlOpt = RISK_URL) -> None:
    """Flatten every position and hold the breaker OPEN until `tm breaker reset --reason`."""
    _post("kill", url, _reason(reason, "kill"))


def _since_ms(since: str | None) -> int | None:
    """``--since``: YYYY-MM-DD (UTC), epoch ms, or a span back from now (``90m``, ``24h``, ``7d``)."""
    if since is None:
        return None
    units = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
    s = since.strip()
    if s[-1:] in units and s[:-1].isdigit():
        return int(datetime.now(UTC).timestamp() * 1000) - int(s[:-1]) * units[s[-1]]
    from tm_app.demo import parse_day_ms

    try:
        return parse_day_ms(s)
    except ValueError as e:
        fail(f"--since: {e} (or a span such as 24h, 7d)", 2)


def audit(kind: Annotated[str | None, typer.Option(help="Only this kind: arming, kill, "
                                                   "breaker_trip, breaker_reset, limit_trip, "
                                                   "promotion, rollback.")] = None,
          since: Annotated[str | None, typer.Option(help="From YYYY-MM-DD (UTC), epoch ms, or "
                                                    "a span back from now (24h, 7d).")] = None,
          limit: Annotated[int, typer.Option(min=1, max=10_000, help="Newest rows.")] = 50,
          as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
          = False) -> None:
    """The audit trail (TM_DATABASE_URL): arming, kills, breaker trips and resets, loss-limit
    trips, promotions and rollbacks; newest first."""
    from tm_common.audit import AUDIT_KINDS, list_audit
    from tm_common.db import make_engine, resolve_database_url
    from tm_common.db.migrate import migrate

    if kind is not None and kind not in AUDIT_KINDS:
        fail(f"--kind {kind!r} is not one of {', '.join(AUDIT_KINDS)}", 2)
    since_ms = _since_ms(since)
    url = resolve_database_url(_settings())

    async def rows():
        engine = make_engine(url)
        try:
            return await list_audit(engine, kind=kind, since_ms=since_ms, limit=limit)
        finally:
            await engine.dispose()
    try:
        migrate(url)
        entries = asyncio.run(rows())
    except Exception as e:  # noqa: BLE001 - one line, no URL (it may hold a password)
        fail(f"database unreachable or not migratable: {type(e).__name__}")
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry.row(), sort_keys=True))
        return
    t = Table(title=f"audit ({len(entries)} rows, newest first)")
    for c in ("when (UTC)", "kind", "what", "why", "who", "event"):
        t.add_column(c)
    for entry in entries:
        when = datetime.fromtimestamp(entry.at_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        t.add_row(when, entry.kind, entry.what, entry.why, entry.who,
                  (entry.event_id or "-")[:12])
    console.print(t)


def register(app: typer.Typer) -> None:
    """Mount ``tm kill``, ``tm breaker`` and ``tm audit`` on ``app``."""
    app.command("kill")(kill)
    app.command("audit")(audit)
    app.add_typer(breaker_app)
