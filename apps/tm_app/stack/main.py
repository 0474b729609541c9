"""``tm``: run the local stack as plain processes (no Docker).

- ``tm up [--services a,b] [--foreground]``: check that every service's port is free (a clash
  is one line naming the port and the process holding it), check Redis and the database (start
  the shared embedded Redis and migrate the database if needed), generate the admin token file
  if ``TM_ADMIN_TOKEN`` is unset, then supervise one process per service. Without
  ``--foreground`` the supervisor detaches and logs to ``<data_dir>/logs/``; with it,
  SIGTERM/SIGHUP/Ctrl-C stop every service.
- ``tm down [--keep-redis]``: stop everything ``tm up``, ``tm paper`` or ``tm demo`` started
  in this data dir, and the embedded Redis.
- ``tm status [--services a,b] [--json]``: each service's ``/status`` and ``/readyz`` in one
  summary line, then the table; exit 1 when a service is not ready.
- ``tm migrate``: upgrade the database to the newest schema.

Settings come from ``TM_*`` variables (:class:`tm_app.stack.stack.StackSettings`: the common
settings plus ``TM_SERVICES_FILE``, a JSON service table replacing the built-in one). Expected
failures (bad arguments, Redis or database unreachable) print one ``error:`` line and exit
non-zero: 2 for usage errors, 1 otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from tm_app.cli import register
from tm_app.stack import stack
from tm_app.stack.env_scope import unread_env
from tm_app.stack.ports import OFFSET_HINT, PortsInUse, check_ports
from tm_app.stack.services import UnknownServiceError, build_specs, missing_reason, select
from tm_app.stack.supervisor import Supervisor

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

# rich_markup_mode=None (here and on every sub-app): click's plain help, each docstring paragraph
# rewrapped to the terminal (Rich mode keeps the source's line breaks) and no text read as markup
app = typer.Typer(name="tm", help="Trade-Matrix local stack.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_show_locals=False, rich_markup_mode=None)

ServicesOpt = Annotated[str | None, typer.Option(
    "--services", "-s", help="Comma-separated service names (default: all).")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one ``error:`` line on stderr and exit with ``code``; a URL's password in it
    (netloc or query string) is shown as ``***``."""
    from tm_common.logging import redact_url

    typer.echo(f"error: {redact_url(message)}", err=True)
    raise typer.Exit(code)


def _settings() -> stack.StackSettings:
    try:
        return stack.load_settings()
    except stack.StackError as e:
        fail(str(e), 2)


def _select(settings: stack.StackSettings, services: str | None) -> list:
    try:
        return select(services, stack.service_table(settings))
    except stack.StackError as e:
        fail(str(e), 2)
    except UnknownServiceError as e:
        fail(str(e), 2)


@app.command()
def up(services: ServicesOpt = None,
       foreground: Annotated[bool, typer.Option(
           "--foreground", "-f", help="Supervise in this terminal; Ctrl-C stops all.")] = False,
       migrate_db: Annotated[bool, typer.Option(
           "--migrate/--no-migrate", help="Upgrade the database schema first.")] = True,
       port_offset: Annotated[int, typer.Option(
           help="Added to every service's default port.")] = 0,
       grace_s: Annotated[float, typer.Option(
           help="Seconds between SIGTERM and SIGKILL on stop.")] = 10.0,
       as_json: JsonOpt = False,
       log_dir: Annotated[Path | None, typer.Option(hidden=True)] = None,
       checked: Annotated[bool, typer.Option(hidden=True)] = False) -> None:
    """Start the services, each as its own process, and restart any that dies. Every port is
    checked first; without TM_ADMIN_TOKEN an admin token is generated into <data dir>/admin-token
    (mode 0600) for `tm breaker` and `tm kill`."""
    settings = _settings()
    selected = _select(settings, services)
    runnable = []
    for s in selected:
        reason = missing_reason(s.module)
        if reason is None:
            runnable.append(s)
        elif services:  # asked for by name: starting without it would mislead
            fail(f"cannot start {s.name}: {reason}")
        else:
            typer.echo(f"skip {s.name}: {reason}", err=True)
    if not runnable:
        fail("no service is runnable (none has a __main__ module yet)")
    try:
        lock = stack.SupervisorLock(settings)
        if not lock.acquire():
            fail(f"a supervisor is already running for {stack.data_dir(settings)} "
                 f"(pid {lock.holder_pid()}); run `tm down` first")
        # --checked: started by a detached `tm up` that already checked the ports, resolved and
        # checked the URLs.
        if not checked:
            check_ports({s.name: s.port + port_offset for s in runnable}, hint=OFFSET_HINT)
        env = dict(os.environ) if checked else stack.prepare_env(settings, migrate_db=migrate_db)
    except (stack.StackError, PortsInUse) as e:
        fail(str(e))
    specs = build_specs(runnable, env, port_offset=port_offset)
    if not checked:
        unread = unread_env([s.name for s in runnable], env, also=[stack.StackSettings])
        if unread:
            typer.echo(f"warning: no service started reads {', '.join(unread)} (a typo?)",
                       err=True)
    if not foreground:
        lock.release()  # the detached supervisor takes it
        _up_detached(settings, [s.name for s in runnable], env, port_offset, grace_s, as_json)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s tm up: %(message)s",
                        stream=sys.stderr)
    _hold_embedded_redis(settings, env.get("TM_REDIS_URL"))
    from tm_app.stack.admin_token import generated_token_file

    token_file = generated_token_file(settings, env.get("TM_RISK_ADMIN_TOKEN"))
    sup = Supervisor(specs, state_path=stack.state_path(settings), log_dir=log_dir,
                     grace_s=grace_s, base_env={},
                     extra_state={"port_offset": port_offset,
                                  "admin_token_file": str(token_file) if token_file else None})
    sup.run()
    lock.release()


def _hold_embedded_redis(settings: stack.StackSettings, url: str | None) -> None:
    """While this supervisor runs, the embedded Redis it uses is in use (a ``tm demo`` stopped
    by a signal leaves it running)."""
    from tm_common.bus.acl import user_url
    from tm_common.embedded import hold_embedded_redis, read_record

    record = read_record(settings)
    # the record's URL has no credentials; ``url`` is the tm-admin one
    if url and record and user_url(record["url"], "-", "-") == user_url(url, "-", "-"):
        hold_embedded_redis(settings)


def _up_detached(settings, names: list[str], env: dict[str, str], port_offset: int,
                 grace_s: float, as_json: bool = False) -> None:
    logs = stack.data_dir(settings) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "tm_app.stack.main", "up", "--foreground", "--checked",
            "--services", ",".join(names), "--port-offset", str(port_offset),
            "--grace-s", str(grace_s), "--log-dir", str(logs)]
    with open(logs / "supervisor.log", "ab") as out:
        child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = stack.read_state(settings)
        if state and state.get("supervisor_pid") == child.pid:
            from tm_app.redis_cli import stack_redis_hint

            hint = stack_redis_hint(settings)
            if as_json:
                typer.echo(json.dumps({"supervisor_pid": child.pid, "logs": str(logs),
                                       "port_offset": port_offset, "redis_cli": hint,
                                       "processes": {n: {"pid": p["pid"], "port": p["port"]}
                                                     for n, p in state["processes"].items()}}))
                return
            for name, p in state["processes"].items():
                typer.echo(f"{name:<13} pid {p['pid'] or '-':<8} port {p['port']}")
            typer.echo(f"supervisor pid {child.pid}; logs in {logs}; `tm status`, `tm down`")
            if hint:
                typer.echo(hint)
            return
        if child.poll() is not None:
            fail(f"supervisor exited with {child.returncode}: {stack.last_line(logs / 'supervisor.log')}")
        time.sleep(0.1)
    fail(f"supervisor did not report within 30 s; see {logs / 'supervisor.log'}")


@app.command()
def down(keep_redis: Annotated[bool, typer.Option(
             "--keep-redis", help="Leave the embedded Redis running.")] = False,
         redis: Annotated[bool, typer.Option(
             "--redis", hidden=True, help="(the default now) Also stop the embedded Redis.")
         ] = False,
         timeout_s: Annotated[float, typer.Option(
             help="Seconds to wait for each supervisor.")] = 30.0,
         as_json: JsonOpt = False) -> None:
    """Stop everything `tm up`, `tm paper` or `tm demo` started in this data dir (every service,
    the supervisor, a running demo) and the embedded Redis."""
    settings = _settings()
    redis_before = stack.embedded_redis_running(settings)
    done: dict[str, object] = {"services": stack.stop_supervisor(settings, timeout_s=timeout_s)}
    demo = stack.stop_demo(settings, timeout_s=timeout_s)
    done["demo"] = None if demo is None else {"pid": demo[0], "services": demo[1]}
    if not keep_redis:
        stopped = set(stack.stop_embedded_redis_all(settings))
        # a run stopped above may have stopped its Redis itself (the last user out)
        stopped |= set(redis_before) - set(stack.embedded_redis_running(settings))
        done["embedded_redis"] = sorted(str(d) for d in stopped)
    else:
        done["embedded_redis"] = []
    if as_json:
        typer.echo(json.dumps(done))
        return
    lines = []
    if done["services"] is not None:
        lines.append(f"stopped {done['services']} service(s)")
    if demo is not None:
        lines.append(f"stopped tm demo (pid {demo[0]}) and its {demo[1]} service(s)")
    lines += [f"embedded Redis stopped ({d})" for d in done["embedded_redis"]]  # type: ignore[attr-defined]
    typer.echo("\n".join(lines) or "tm is not running")


@app.command()
def status(services: ServicesOpt = None,
           as_json: Annotated[bool, typer.Option(
               "--json", help="Print JSON (one object per service) instead of a table.")
           ] = False,
           timeout_s: Annotated[float, typer.Option(
               help="Seconds to wait for each /status and /readyz.")] = 1.0) -> None:
    """A summary line (how many are ready; why the mesh trades flat when it does), then each
    supervised service: ready (or the first reason it is not), last event, handled, lag/pending,
    restarts. Exits 1 when a service is not ready."""
    from tm_app.stack.status import all_ready, collect, render, summary_line

    settings = _settings()
    names = [s.name for s in _select(settings, services)] if services else None
    state = stack.read_state(settings)
    if not state:
        fail(f"tm is not running (no {stack.state_path(settings)}); start it with `tm up`")
    rows = collect(state, names, timeout_s=timeout_s)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        console = Console()
        console.print(summary_line(rows), markup=False, highlight=False)   # first: why, in one line
        console.print(render(rows, console.width))
        from tm_app.redis_cli import stack_redis_hint

        hint = stack_redis_hint(settings)
        if hint:                         # one line, ready to paste (never folded)
            console.print(hint, soft_wrap=True, markup=False, highlight=False)
    if not all_ready(rows):
        raise typer.Exit(1)


@app.command("migrate")
def migrate_cmd(as_json: JsonOpt = False) -> None:
    """Upgrade the database (TM_DATABASE_URL or the SQLite default) to the newest schema."""
    settings = _settings()
    try:
        url, head = stack.migrate_database(settings)
    except stack.StackError as e:
        fail(str(e))
    typer.echo(json.dumps({"database": url, "revision": head}) if as_json
               else f"{url} is at {head}")


# The commands that run the whole system (demo, backtest, streams, breaker, report).
register(app)


def main() -> None:  # `python -m tm_app.stack.main`
    app()


if __name__ == "__main__":
    main()
