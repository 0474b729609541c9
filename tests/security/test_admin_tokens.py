"""A separate admin token per service (issue 19, part 5): each service with admin endpoints
reads its own variable, which wins over the shared ``TM_ADMIN_TOKEN``, and refuses to start with
one shorter than the minimum, naming the variable and never the value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tm_common.admin_tokens import MIN_ADMIN_TOKEN_CHARS
from tm_exchange_sim.config import ExchangeSimSettings
from tm_ingest.config import IngestSettings
from tm_risk.config import RiskSettings

LONG = "SECown-admin-token-" + "k" * MIN_ADMIN_TOKEN_CHARS


@pytest.mark.parametrize(("cls", "field"), [(RiskSettings, "risk_admin_token"),
                                            (ExchangeSimSettings, "sim_admin_token"),
                                            (IngestSettings, "sim_admin_token")])
def test_own_token_wins_over_the_shared_one(cls, field):
    s = cls.from_values(admin_token="shared", **{field: LONG})
    assert s.admin_token is not None and s.admin_token.get_secret_value() == LONG
    assert cls.from_values(admin_token="shared").admin_token.get_secret_value() == "shared"
    assert LONG not in repr(s)


@pytest.mark.parametrize(("module", "var"), [("tm_risk", "TM_RISK_ADMIN_TOKEN"),
                                             ("tm_exchange_sim", "TM_SIM_ADMIN_TOKEN"),
                                             ("tm_ingest", "TM_INGEST_SIM_ADMIN_TOKEN")])
def test_a_short_own_token_stops_the_service_naming_the_variable(module, var, tmp_path):
    short = "SECshort-" + "x" * (MIN_ADMIN_TOKEN_CHARS - 10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update({var: short, "TM_DATA_DIR": str(tmp_path)})
    p = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert f"{var} is shorter than {MIN_ADMIN_TOKEN_CHARS} characters" in p.stderr
    assert short not in p.stdout + p.stderr
