"""``tm``: run the local stack as plain processes (no Docker).

- ``tm up [--services a,b] [--foreground]``: check Redis and the database (start the shared
  embedded Redis and migrate the database if needed), then supervise one process per service.
  Without ``--foreground`` the supervisor detaches and logs to ``<data_dir>/logs/``.
- ``tm down [--redis]``: stop a running supervisor (and the embedded Redis with ``--redis``).
- ``tm status [--services a,b] [--json]``: each service's ``/status`` in one table.
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
from tm_app.stack.services import UnknownServiceError, build_specs, missing_reason, select
from tm_app.stack.supervisor import Supervisor

app = typer.Typer(name="tm", help="Trade-Matrix local stack.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_show_locals=False)

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
       log_dir: Annotated[Path | None, typer.Option(hidden=True)] = None,
       checked: Annotated[bool, typer.Option(hidden=True)] = False) -> None:
    """Start the services, each as its own process, and restart any that dies."""
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
        # --checked: started by a detached `tm up` that already resolved and checked the URLs.
        env = dict(os.environ) if checked else stack.prepare_env(settings, migrate_db=migrate_db)
    except stack.StackError as e:
        fail(str(e))
    specs = build_specs(runnable, env, port_offset=port_offset)
    if not checked:
        unread = unread_env([s.name for s in runnable], env, also=[stack.StackSettings])
        if unread:
            typer.echo(f"warning: no service started reads {', '.join(unread)} (a typo?)",
                       err=True)
    if not foreground:
        lock.release()  # the detached supervisor takes it
        _up_detached(settings, [s.name for s in runnable], env, port_offset, grace_s)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s tm up: %(message)s",
                        stream=sys.stderr)
    sup = Supervisor(specs, state_path=stack.state_path(settings), log_dir=log_dir,
                     grace_s=grace_s, base_env={})
    sup.run()
    lock.release()


def _up_detached(settings, names: list[str], env: dict[str, str], port_offset: int,
                 grace_s: float) -> None:
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
            for name, p in state["processes"].items():
                typer.echo(f"{name:<13} pid {p['pid'] or '-':<8} port {p['port']}")
            typer.echo(f"supervisor pid {child.pid}; logs in {logs}; `tm status`, `tm down`")
            return
        if child.poll() is not None:
            fail(f"supervisor exited with {child.returncode}: {stack.last_line(logs / 'supervisor.log')}")
        time.sleep(0.1)
    fail(f"supervisor did not report within 30 s; see {logs / 'supervisor.log'}")


@app.command()
def down(redis: Annotated[bool, typer.Option(
             "--redis", help="Also stop the embedded Redis.")] = False,
         timeout_s: Annotated[float, typer.Option(
             help="Seconds to wait for the supervisor.")] = 30.0) -> None:
    """Stop a running supervisor and every service it started."""
    settings = _settings()
    stopped = stack.stop_supervisor(settings, timeout_s=timeout_s)
    typer.echo(f"stopped {stopped} service(s)" if stopped is not None else "tm is not running")
    if redis:
        from tm_common.embedded import stop_embedded_redis

        was = stop_embedded_redis(settings)
        typer.echo("embedded Redis stopped" if was else "embedded Redis was not running")


@app.command()
def status(services: ServicesOpt = None,
           as_json: Annotated[bool, typer.Option(
               "--json", help="Print JSON instead of a table.")] = False,
           timeout_s: Annotated[float, typer.Option(
               help="Seconds to wait for each /status.")] = 1.0) -> None:
    """Show each supervised service's /status: up/down, last event, handled, lag, pending."""
    from tm_app.stack.status import collect, render

    settings = _settings()
    names = [s.name for s in _select(settings, services)] if services else None
    state = stack.read_state(settings)
    if not state:
        fail(f"tm is not running (no {stack.state_path(settings)}); start it with `tm up`")
    rows = collect(state, names, timeout_s=timeout_s)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        Console().print(render(rows))


@app.command("migrate")
def migrate_cmd() -> None:
    """Upgrade the database (TM_DATABASE_URL or the SQLite default) to the newest schema."""
    settings = _settings()
    try:
        url, head = stack.migrate_database(settings)
    except stack.StackError as e:
        fail(str(e))
    typer.echo(f"{url} is at {head}")


# The commands that run the whole system (demo, backtest, streams, breaker, report).
register(app)


def main() -> None:  # `python -m tm_app.stack.main`
    app()


if __name__ == "__main__":
    main()
