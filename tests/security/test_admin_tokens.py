"""A separate admin token per service (issue 19, part 5): each service with admin endpoints
reads its own variable, which wins over the shared ``TM_ADMIN_TOKEN``, and refuses to start with
one shorter than the minimum, naming the variable and never the value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError
from tm_common.admin_tokens import MIN_ADMIN_TOKEN_CHARS
from tm_common.settings import CommonSettings
from tm_exchange_sim.config import ExchangeSimSettings
from tm_ingest.config import IngestSettings
from tm_risk.config import RiskSettings

LONG = "SECown-admin-token-" + "k" * MIN_ADMIN_TOKEN_CHARS
SHARED = "SECshared-admin-token-" + "s" * MIN_ADMIN_TOKEN_CHARS


@pytest.mark.parametrize(("cls", "field"), [(RiskSettings, "risk_admin_token"),
                                            (ExchangeSimSettings, "sim_admin_token"),
                                            (IngestSettings, "sim_admin_token")])
def test_own_token_wins_over_the_shared_one(cls, field):
    s = cls.from_values(admin_token=SHARED, **{field: LONG})
    assert s.admin_token is not None and s.admin_token.get_secret_value() == LONG
    assert cls.from_values(admin_token=SHARED).admin_token.get_secret_value() == SHARED
    assert LONG not in repr(s)


@pytest.mark.parametrize(("module", "var"), [("tm_risk", "TM_RISK_ADMIN_TOKEN"),
                                             ("tm_exchange_sim", "TM_SIM_ADMIN_TOKEN"),
                                             ("tm_ingest", "TM_INGEST_SIM_ADMIN_TOKEN"),
                                             ("tm_risk", "TM_ADMIN_TOKEN"),
                                             ("tm_exchange_sim", "TM_ADMIN_TOKEN"),
                                             ("tm_portfolio", "TM_ADMIN_TOKEN")])
def test_a_short_token_stops_the_service_naming_the_variable(module, var, tmp_path):
    """The shared ``TM_ADMIN_TOKEN`` is held to the same minimum as a service's own token."""
    short = "SECshort-" + "x" * (MIN_ADMIN_TOKEN_CHARS - 10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update({var: short, "TM_DATA_DIR": str(tmp_path)})
    p = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert f"{var} is shorter than {MIN_ADMIN_TOKEN_CHARS} characters" in p.stderr
    assert short not in p.stdout + p.stderr


@pytest.mark.parametrize("cls", [CommonSettings, RiskSettings, ExchangeSimSettings])
def test_a_short_token_given_as_a_value_is_refused_without_the_value(cls):
    """``from_values`` (how a parent builds a child's settings) checks the shared token too,
    and the refusal names the variable, never the token."""
    short = "SECshort-" + "y" * (MIN_ADMIN_TOKEN_CHARS - 10)
    with pytest.raises(ValidationError) as e:
        cls.from_values(admin_token=short)
    assert f"TM_ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_CHARS} characters" in str(e.value)
    assert short not in str(e.value)
    exact = "z" * MIN_ADMIN_TOKEN_CHARS
    assert cls.from_values(admin_token=exact).admin_token.get_secret_value() == exact
