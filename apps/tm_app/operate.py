"""The operator's commands: ``tm kill``, ``tm breaker trip|reset`` (the risk service's admin
endpoints) and ``tm audit`` (the audit trail).

A kill and a reset need a non-blank ``--reason``: it is stored with the command, in the breaker's
transition and in the audit trail, beside who gave it (the admin token's name and this user,
sent as ``X-TM-Actor``). Errors are one line and a non-zero exit (``tm_app.cli.fail``).

Where and with what: ``--url``, else the risk service of the stack running in ``TM_DATA_DIR``
(``tm up`` or ``tm paper``: its state file records each port, the port offset included), else
``http://127.0.0.1:8105``. The token is ``TM_ADMIN_TOKEN``, else the file the stack generated
(``<data_dir>/admin-token``, mode 0600).
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
UrlOpt = Annotated[str | None, typer.Option(
    help="The risk service's base URL (default: the running stack's risk, else " + RISK_URL + ").")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the service's answer as JSON.")]

breaker_app = typer.Typer(name="breaker", help="Trip or reset the circuit breaker (risk service).",
                          no_args_is_help=True, rich_markup_mode=None)


def _reason(reason: str, action: str) -> str:
    if not reason.strip():
        fail(f"{action}: --reason must not be empty (say why: it goes into the audit trail)", 2)
    return reason.strip()


def _target(url: str | None) -> tuple[str, str]:
    """(risk base URL, admin token) for an admin command; exit 2 naming what is missing."""
    from tm_app.stack.admin_token import admin_token_path, find_admin_token
    from tm_app.stack.stack import StackError, read_state

    settings = _settings()
    state = read_state(settings)
    try:
        token = find_admin_token(settings, state)
    except StackError as e:
        fail(str(e), 2)
    if token is None:
        fail("no admin token: TM_ADMIN_TOKEN is not set and no stack generated one in "
             f"{admin_token_path(settings)} (start it with `tm up`)", 2)
    if url is None:
        risk = ((state or {}).get("processes") or {}).get("risk") or {}
        url = f"http://127.0.0.1:{risk['port']}" if risk.get("port") else RISK_URL
    return url, token


def _post(action: str, url: str | None, reason: str, as_json: bool = False) -> None:
    import httpx
    from tm_common.audit import cli_user

    url, token = _target(url)
    try:
        r = httpx.post(f"{url.rstrip('/')}/breaker/{action}", json={"reason": reason},
                       headers={"Authorization": f"Bearer {token}",
                                "X-TM-Actor": cli_user()}, timeout=10, trust_env=False)
    except httpx.HTTPError as e:
        fail(f"risk service unreachable at {url}: {type(e).__name__}")
    if r.status_code >= 400:
        fail(f"HTTP {r.status_code} from {url}: {r.text[:200]}")
    try:
        doc = r.json()
    except ValueError:
        fail(f"{url} answered HTTP {r.status_code} with no JSON: {r.text[:200]}")
    if as_json:
        typer.echo(json.dumps(doc, sort_keys=True))
    else:
        console.print(doc)


@breaker_app.command("trip")
def breaker_trip(reason: Annotated[str, typer.Option(help="Why.")] = "manual",
                 url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Trip the breaker: flatten and hold OPEN until `tm breaker reset` (no cool-down)."""
    _post("trip", url, reason, as_json)


@breaker_app.command("reset")
def breaker_reset(reason: Annotated[str, typer.Option(help="Why it is safe to trade again "
                                                      "(required; audited).")],
                  url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Close the breaker (lifts a kill, a manual trip or a loss-limit hold; a loss-limit reset
    rebases that limit's baseline with this reason)."""
    _post("reset", url, _reason(reason, "reset"), as_json)


def kill(reason: Annotated[str, typer.Option(help="Why (required; audited).")],
         url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Flatten every position and hold the breaker OPEN until `tm breaker reset --reason`."""
    _post("kill", url, _reason(reason, "kill"), as_json)


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
    console.print(audit_table(entries, console.width))


def audit_table(entries: list, width: int = 80) -> Table:
    """The audit rows, newest first, for a console ``width`` columns wide: the prose folds, the
    identifiers stay whole; below 100 columns the event id is left out (``--json`` has it)."""
    t = Table(title=f"audit ({len(entries)} rows, newest first)")
    t.add_column("when (UTC)", min_width=10, overflow="fold")
    t.add_column("kind", min_width=13, overflow="fold")
    for c in ("what", "why", "who"):
        t.add_column(c, overflow="fold", ratio=1)
    wide = width >= 100
    if wide:
        t.add_column("event", min_width=12, overflow="fold")
    for entry in entries:
        when = datetime.fromtimestamp(entry.at_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        cells = [when, entry.kind, entry.what, entry.why, entry.who]
        t.add_row(*cells, *([(entry.event_id or "-")[:12]] if wide else []))
    return t


def register(app: typer.Typer) -> None:
    """Mount ``tm kill``, ``tm breaker`` and ``tm audit`` on ``app``."""
    app.command("kill")(kill)
    app.command("audit")(audit)
    app.add_typer(breaker_app)
