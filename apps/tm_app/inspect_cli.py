"""``tm streams`` (length, consumer groups, lag, pending and dead letters of every stream, as
a table or JSON) and ``tm report`` (the summary, or the numbers, of a written report). Errors
are one line and a non-zero exit (:func:`tm_app.cli.fail`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tm_app.cli import _prepare, _settings, console, fail

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def streams(as_json: JsonOpt = False) -> None:
    """Length, consumer groups, lag, pending and dead letters of every stream."""
    from tm_common.bus.redis import RedisStreamsBus
    from tm_common.bus.streams import ALL_STREAMS, dlq

    settings = _settings()
    redis_url, _ = (settings.redis_url, None) if settings.redis_url else _prepare(settings)

    async def collect():
        bus = RedisStreamsBus(redis_url, prefix=settings.namespace)
        try:
            rows = []
            for s in ALL_STREAMS:
                groups = await bus.group_info(s)
                rows.append((s, await bus.length(s), groups, await bus.length(dlq(s))))
            return rows
        finally:
            await bus.close()
    try:
        rows = asyncio.run(collect())
    except Exception as e:  # noqa: BLE001
        fail(f"Redis unreachable: {type(e).__name__}: {e}")
    if as_json:
        typer.echo(json.dumps({"namespace": settings.namespace, "streams": [
            {"stream": s, "length": n, "dead_letters": d,
             "groups": [{k: g.get(k) for k in ("name", "lag", "pending", "consumers")}
                        for g in groups]} for s, n, groups, d in rows]}, indent=2))
        return
    console.print(streams_table(settings.namespace, rows))


def streams_table(namespace: str, rows: list) -> Table:
    """(stream, length, groups, dead letters) rows as a table that folds to 80 columns."""
    t = Table(title=f"streams ({namespace})")
    for c, justify in (("stream", "left"), ("length", "right"), ("groups (lag/pending)", "left"),
                       ("dead letters", "right")):
        t.add_column(c, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s, n, groups, d in rows:
        g = ", ".join(f"{x['name']} ({x['lag']}/{x['pending']})" for x in groups) or "–"
        t.add_row(s, str(n), g, str(d))
    return t


def report_cmd(path: Annotated[Path, typer.Argument(help="A report folder or report.json.")],
               as_json: Annotated[bool, typer.Option(
                   "--json", help="Print the report's numbers (report.json) instead.")] = False
               ) -> None:
    """Print the summary of a written report."""
    from tm_app.demo import summary_table

    f = path / "report.json" if path.is_dir() else path
    if not f.is_file():
        fail(f"no report at {f}", 2)
    try:
        doc = json.loads(f.read_text())
    except ValueError as e:
        fail(f"{f}: not a report ({e})", 2)
    if not isinstance(doc, dict) or not isinstance(doc.get("stats"), dict):
        fail(f"{f}: not a report (no stats)", 2)
    if as_json:
        typer.echo(json.dumps(_nulls(doc), indent=2, allow_nan=False, default=str))
        return
    console.print(summary_table(doc, doc.get("meta", {}).get("mode", "run")))


def _nulls(x: object) -> object:
    """``x`` with NaN/±inf floats as ``None`` (JSON has no NaN)."""
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {k: _nulls(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nulls(v) for v in x]
    return x
