"""The port check (a taken port and its owner in one line) and the stack's admin token file."""

from __future__ import annotations

import os
import socket
import stat

import pytest
from pydantic import SecretStr
from tm_app.stack.admin_token import (
    ensure_admin_token,
    find_admin_token,
    generated_token_file,
    read_token_file,
    token_env,
)
from tm_app.stack.ports import PortsInUse, check_ports, is_free, port_owner
from tm_app.stack.services import build_specs, select
from tm_app.stack.stack import StackError
from tm_common.settings import CommonSettings
from tm_common.testing.redis import free_port


@pytest.fixture
def listening():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def test_a_taken_port_names_its_service_and_owner(listening):
    free = free_port()
    assert not is_free(listening) and is_free(free)
    owner = port_owner(listening)
    assert owner is not None and owner.startswith(f"pid {os.getpid()} (")
    with pytest.raises(PortsInUse) as e:
        check_ports({"ingest": free, "risk": listening, "none": None}, hint="use --port-offset")
    msg = str(e.value)
    assert msg == f"port {listening} (risk) is in use by {owner}; use --port-offset"
    assert "\n" not in msg and [c.service for c in e.value.clashes] == ["risk"]
    check_ports({"ingest": free})      # free ports: no error


def _settings(tmp_path, **kw) -> CommonSettings:
    return CommonSettings.from_values(data_dir=tmp_path, **kw)


def test_the_token_file_is_private_and_stable(tmp_path):
    s = _settings(tmp_path)
    path = ensure_admin_token(s)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = read_token_file(path)
    assert len(token) >= 32 and ensure_admin_token(s) == path and read_token_file(path) == token
    assert generated_token_file(s, token) == path
    assert generated_token_file(s, "the-users-own") is None
    assert find_admin_token(s, None) == token
    assert find_admin_token(s, {"admin_token_file": str(path)}) == token
    # TM_ADMIN_TOKEN wins over the file
    assert find_admin_token(_settings(tmp_path, admin_token=SecretStr("mine" * 6)), None) == "mine" * 6
    path.chmod(0o644)
    with pytest.raises(StackError, match=r"open to other users \(mode 644\); chmod 600"):
        read_token_file(path)


def test_one_file_a_token_per_service_and_ingest_never_holds_risks(tmp_path):
    s = _settings(tmp_path)
    path = ensure_admin_token(s)
    risk, sim = read_token_file(path, "risk"), read_token_file(path, "exchange_sim")
    assert risk != sim and find_admin_token(s, None, "exchange_sim") == sim
    env = token_env(path)
    assert env == {"TM_RISK_ADMIN_TOKEN": risk, "TM_SIM_ADMIN_TOKEN": sim,
                   "TM_INGEST_SIM_ADMIN_TOKEN": sim}
    specs = {p.name: p.env for p in build_specs(select(None), {**env, "TM_REDIS_URL": "redis://x"})}
    assert specs["risk"].get("TM_RISK_ADMIN_TOKEN") == risk
    assert specs["exchange_sim"].get("TM_SIM_ADMIN_TOKEN") == sim
    assert specs["ingest"].get("TM_INGEST_SIM_ADMIN_TOKEN") == sim
    assert risk not in str(specs["ingest"]) and risk not in str(specs["exchange_sim"])
    assert all(risk not in str(e) and sim not in str(e) for n, e in specs.items()
               if n not in ("risk", "exchange_sim", "ingest"))
    # an older version's single-token file is replaced; a broken map is a clear error
    path.unlink()
    path.write_text("x" * 40 + "\n")
    path.chmod(0o600)
    assert read_token_file(ensure_admin_token(s)) != "x" * 40
    path.write_text('{"risk": "short"}')
    with pytest.raises(StackError, match="not a JSON map of a token per service"):
        read_token_file(path)


def test_no_token_anywhere_is_none(tmp_path):
    assert find_admin_token(_settings(tmp_path), None) is None


def test_only_the_services_that_check_the_token_get_it():
    specs = build_specs(select(None), {"TM_ADMIN_TOKEN": "t" * 24, "TM_REDIS_URL": "redis://x"})
    got = {s.name for s in specs if "TM_ADMIN_TOKEN" in s.env}
    assert got == {"risk", "exchange_sim", "ingest"}
    assert all(s.env["TM_REDIS_URL"] == "redis://x" for s in specs)
