"""``settings_error``: a settings class's validation error as one line naming each variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tm_common.settings import CommonSettings, settings_error
from tm_risk.config import RiskSettings


def _error(cls, **values) -> str:
    with pytest.raises(ValidationError) as e:
        cls.from_values(**values)
    return settings_error(cls, e.value)


def test_every_problem_names_its_variable_on_one_line():
    line = _error(CommonSettings, interval_min=0, max_deliveries="many")
    assert "\n" not in line
    assert line == ("TM_INTERVAL_MIN: Input should be greater than 0; TM_MAX_DELIVERIES: Input "
                    "should be a valid integer, unable to parse string as an integer")


def test_a_service_field_gets_its_prefixed_variable_and_a_named_reason_is_not_repeated():
    assert _error(RiskSettings, cooldown_secs="soon").startswith("TM_RISK_COOLDOWN_S: ")
    line = _error(RiskSettings, risk_admin_token="SECtooshort")
    assert line.startswith("TM_RISK_ADMIN_TOKEN is shorter than 24 characters")
    assert "SECtooshort" not in line
