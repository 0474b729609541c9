"""``tm kill`` against the risk service as a real process on real Redis, while its PostgreSQL
database is down (here: not yet created, so every connection is refused): the kill flattens at
once and holds the breaker OPEN; its audit row (who: the token's name and the CLI user) lands
once the database is back, and ``tm audit`` lists it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import tm_risk.commands  # noqa: F401 - registers breaker.command_issued for decoding
from sqlalchemy.engine import make_url
from tm_common.audit import cli_user
from tm_common.bus.streams import RISK_BREAKER, RISK_ORDER
from tm_common.testing.databases import pg_execute
from tm_risk.commands import RISK_COMMAND

from .test_risk_process import _order_flow

TM = str(Path(sys.executable).parent / "tm")


def _tm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    e.update(COLUMNS="200", **env)
    return subprocess.run([TM, *args], env=e, capture_output=True, text=True, timeout=120,
                          check=False)


def test_kill_during_a_database_outage_flattens_and_its_audit_row_lands_later(
        risk_process, streams, secret, wait, pg_admin, tmp_path):
    name = f"tm_test_{uuid.uuid4().hex[:16]}"
    db_url = make_url(pg_admin).set(drivername="postgresql+asyncpg", database=name) \
        .render_as_string(hide_password=False)
    svc = risk_process(TM_DATABASE_URL=db_url, TM_ADMIN_NAME="ops-team")
    try:
        order = _order_flow(svc, streams, wait)
        env = {"TM_ADMIN_TOKEN": secret, "TM_DATA_DIR": str(tmp_path / ".tm")}
        p = _tm(env, "kill", "--url", svc.base, "--reason", "  ")
        assert p.returncode == 2 and "--reason must not be empty" in p.stderr
        p = _tm(env, "kill", "--url", svc.base)
        assert p.returncode == 2 and "--reason" in p.stdout + p.stderr
        assert streams.bodies(RISK_COMMAND) == []                  # refusals send nothing

        p = _tm(env, "kill", "--url", svc.base, "--reason", "exchange incident")
        assert p.returncode == 0, p.stdout + p.stderr
        (b,) = streams.bodies(RISK_BREAKER)
        assert (b.from_state, b.to_state, b.trigger) == ("CLOSED", "OPEN", "kill")
        assert b.reason == f"kill by ops-team (cli user {cli_user()}): exchange incident"
        _, flat = streams.bodies(RISK_ORDER)                      # flattened at once
        assert flat.reduce_only and flat.qty == order.qty and flat.target_qty == 0
        status = svc.status()["extra"]
        assert status["breaker"]["hold"] == "kill" and status["audit_outbox"] == 1
        wait(lambda: "audit.db_write_failed" in svc.logs(), 15, "a failed audit write")

        pg_execute(pg_admin, f'CREATE DATABASE "{name}"')         # the database is back
        audit_env = {"TM_DATABASE_URL": db_url, "TM_DATA_DIR": str(tmp_path / ".tm")}

        def listed():
            q = _tm(audit_env, "audit", "--json", "--kind", "kill")
            assert q.returncode == 0, q.stderr
            return [json.loads(x) for x in q.stdout.splitlines() if x.strip()]
        (row,) = wait(listed, 60, "the kill's audit row")
        assert row["kind"] == "kill" and row["why"] == "exchange incident"
        assert row["who"] == f"ops-team (cli user {cli_user()})" and row["source"] == "risk"
        assert row["what"] == "breaker CLOSED -> OPEN (kill)" and row["event_id"]
        (_, command), = streams.entries(RISK_COMMAND)
        assert row["event_id"] == command["event_id"]              # the event that caused it
        table = _tm(audit_env, "audit", "--since", "1h")
        assert table.returncode == 0 and "exchange incident" in table.stdout
        assert _tm(audit_env, "audit", "--kind", "nonsense").returncode == 2
    finally:
        svc.stop()
        pg_execute(pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
