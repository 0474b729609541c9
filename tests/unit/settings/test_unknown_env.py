"""A ``TM_`` variable that no setting reads is reported at start (names only, never values)."""

from __future__ import annotations

import io
import json

from tm_common.logging import configure_logging
from tm_common.settings import ALLOWED_ENV, known_env, unknown_env

from .conftest import SERVICE_SETTINGS

ALL = list(SERVICE_SETTINGS.values())


def test_every_variable_a_setting_reads_is_known():
    env = {name: "1" for name in known_env(ALL)}
    assert unknown_env(ALL, env) == []
    for cls in ALL:        # and one service alone flags none of them either
        assert unknown_env([cls], env) == []


def test_misspelt_and_old_names_are_unknown():
    env = {"TM_JOIN_TIMEOUT_SECS": "0", "TM_REDIS_ULR": "x", "TM_RISK_JOIN_TIMEOUT_SECS": "0",
           "TM_SYMBOLS": "BTCUSDT", "PATH": "/bin", "TM_TEST_REDIS_URL": "redis://"}
    assert unknown_env(ALL, env) == ["TM_JOIN_TIMEOUT_SECS", "TM_REDIS_ULR",
                                     "TM_RISK_JOIN_TIMEOUT_SECS"]
    # risk owns TM_RISK_*: it flags the typo; the sizer leaves it to risk
    assert "TM_RISK_JOIN_TIMEOUT_SECS" in unknown_env([SERVICE_SETTINGS["risk"]], env)
    assert unknown_env([SERVICE_SETTINGS["sizer"]], env) == ["TM_JOIN_TIMEOUT_SECS",
                                                            "TM_REDIS_ULR"]


def test_allow_list_is_explicit():
    assert "TM_TEST_*" in ALLOWED_ENV
    assert unknown_env(ALL, {"TM_TEST_DATABASE_URL": "x", "TM_SERVICES_FILE": "f"}) == []
    assert unknown_env(ALL, {"TM_SERVICES_FILE": "f"}, allow=()) == ["TM_SERVICES_FILE"]


def test_start_up_warns_once_naming_the_variables_not_their_values(clean_env):
    clean_env.setenv("TM_JOIN_TIMEOUT_SECS", "hunter2-value")
    clean_env.setenv("TM_RISK_JOIN_TIMEOUT_S", "0")
    out = io.StringIO()
    configure_logging(SERVICE_SETTINGS["risk"](), stream=out)
    lines = [json.loads(x) for x in out.getvalue().splitlines() if x.strip()]
    warned = [x for x in lines if x["event"] == "settings.unknown_env"]
    assert len(warned) == 1 and warned[0]["level"] == "warning"
    assert warned[0]["names"] == ["TM_JOIN_TIMEOUT_SECS"]
    assert "hunter2-value" not in out.getvalue()


def test_no_warning_when_every_variable_is_read(clean_env):
    clean_env.setenv("TM_RISK_JOIN_TIMEOUT_S", "0")
    clean_env.setenv("TM_SIZER_JOIN_TIMEOUT_S", "0")     # another service's: not risk's to judge
    out = io.StringIO()
    configure_logging(SERVICE_SETTINGS["risk"](), stream=out)
    assert "settings.unknown_env" not in out.getvalue()
