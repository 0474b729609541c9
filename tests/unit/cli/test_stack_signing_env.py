"""``tm up``, ``tm demo`` and ``tm paper`` give the local stack its signing keys
(tm_common.bus.signing), from the data directory's key file: ``tm up`` every holder's variable
unless already set, the mesh each service only its own."""

from __future__ import annotations

import os

from tm_app.stack import stack
from tm_common.bus.signing import SIGNED_STREAMS, read_local_keys, signing_env


def test_prepare_env_gives_every_holder_its_keys_and_keeps_a_set_one(tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.upper().startswith("TM_")]:
        monkeypatch.delenv(k)
    monkeypatch.setattr(stack, "redis_url", lambda s: "redis://127.0.0.1:6379/0")
    monkeypatch.setattr(stack, "database_url", lambda s, timeout_s=10.0: "sqlite+aiosqlite:///x")
    monkeypatch.setenv("TM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TM_RISK_SIGNING_KEY_RISK_ORDER", "mine" * 10)
    env = stack.prepare_env(stack.load_settings(), migrate_db=False)
    keys = read_local_keys(tmp_path)
    assert set(keys) == set(SIGNED_STREAMS)
    expected = signing_env(keys)
    assert env["TM_RISK_SIGNING_KEY_RISK_ORDER"] == "mine" * 10          # the operator's wins
    del expected["TM_RISK_SIGNING_KEY_RISK_ORDER"]
    assert {k: env[k] for k in expected} == expected
    assert env["TM_EXECUTOR_SIGNING_KEY_RISK_ORDER"] == keys["risk.order"]
    again = stack.prepare_env(stack.load_settings(), migrate_db=False)
    assert again["TM_SIGNAL_SIGNING_KEY_MODELS_PROMOTED"] == env["TM_SIGNAL_SIGNING_KEY_MODELS_PROMOTED"]


def test_demo_and_paper_give_each_service_only_its_own_keys(tmp_path):
    from tm_app.backtest import RunConfig
    from tm_app.mesh import _specs
    from tm_common.bus.signing import KEY_HOLDERS, local_keys, service_signing_env

    cfg = RunConfig(database_url="sqlite+aiosqlite:////tmp/x.db", start_ms=1_700_000_000_000,
                    end_ms=1_700_100_000_000)
    specs = _specs(cfg, redis_url="redis://127.0.0.1:6379/0", namespace="tmrun:t:",
                   data_dir=tmp_path, port_offset=0)
    keys = local_keys(tmp_path)
    for spec in specs:
        got = {k: v for k, v in spec.env.items() if "_SIGNING_KEY_" in k}
        assert got == service_signing_env(spec.name, keys), spec.name
    holders = {s.name for s in specs if any("_SIGNING_KEY_" in k for k in s.env)}
    assert holders == {h for hs in KEY_HOLDERS.values() for h in hs} - {"trainer"}
