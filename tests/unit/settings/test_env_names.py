"""The naming rules of ``tm_common.settings`` hold for every field of every settings class:
shared fields are ``TM_<FIELD>``, a service's own fields carry its prefix, and a quantity with a
unit ends in that unit (one spelling per unit)."""

from __future__ import annotations

import typing
from decimal import Decimal

import pytest
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import COMMON_PREFIX, SERVICE_ENV_PREFIXES, CommonSettings, env_name, env_names

from .conftest import SERVICE_SETTINGS

UNIT_SUFFIXES = ("_MS", "_S", "_MIN", "_BARS", "_BPS", "_USDT", "_PER_S")
# other spellings of the units above: never used
BANNED_SUFFIXES = ("_SEC", "_SECS", "_SECOND", "_SECONDS", "_MILLIS", "_MSEC", "_MSECS",
                   "_MINS", "_MINUTE", "_MINUTES", "_HOURS", "_PCT", "_PERCENT", "_USD")
# a name with one of these words is a duration, so it carries a time unit ...
TIME_WORDS = {"TIMEOUT", "INTERVAL", "WAIT", "DELAY", "BACKOFF", "PING", "LATENCY", "PACE",
              "COOLDOWN", "DEADLINE", "RETRY", "POLL", "IDLE", "BLOCK"}
# ... unless it names a unitless quantity about a duration (the probability of a timeout)
UNITLESS_SUFFIXES = ("_PROB", "_FRACTION", "_ENABLED", "_LIMIT")
MONEY_WORDS = {"EQUITY", "BALANCE", "NOTIONAL"}


def test_every_service_has_one_prefix_from_the_table():
    assert set(SERVICE_ENV_PREFIXES) == set(SERVICE_PORTS) == set(SERVICE_SETTINGS)
    for name, cls in SERVICE_SETTINGS.items():
        assert cls.model_config["env_prefix"] == SERVICE_ENV_PREFIXES[name]
    prefixes = list(SERVICE_ENV_PREFIXES.values())
    assert len(set(prefixes)) == len(prefixes)
    for p in prefixes:       # no prefix hides inside another, nor inside a shared name
        assert p.startswith(COMMON_PREFIX) and p.endswith("_")
        assert not any(q != p and q.startswith(p) for q in prefixes)
        assert not any(e.startswith(p) for e in env_names(CommonSettings).values())


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_prefix_rule(service):
    cls = SERVICE_SETTINGS[service]
    prefix = SERVICE_ENV_PREFIXES[service]
    names = env_names(cls)
    for field, env in names.items():
        if field in CommonSettings.model_fields:
            assert env == COMMON_PREFIX + field.upper(), field
        else:
            assert env.startswith(prefix), f"{service}.{field} is read from {env}"
    assert len(set(names.values())) == len(names), "two fields read one variable"


def test_no_variable_reaches_two_services_unless_shared():
    owner: dict[str, str] = {}
    for service, cls in SERVICE_SETTINGS.items():
        for field, env in env_names(cls).items():
            if field in CommonSettings.model_fields:
                continue
            assert env not in owner, f"{env} is read by {owner.get(env)} and {service}"
            owner[env] = service


def _unit_problems(cls) -> list[str]:
    bad = []
    hints = typing.get_type_hints(cls)
    for field, env in env_names(cls).items():
        words = set(env.removeprefix(COMMON_PREFIX).split("_"))
        if env.endswith(BANNED_SUFFIXES):
            bad.append(f"{env}: banned unit spelling")
        if words & TIME_WORDS and not env.endswith(UNIT_SUFFIXES + UNITLESS_SUFFIXES):
            bad.append(f"{env}: a duration without _ms/_s/_min")
        if hints.get(field) is Decimal and words & MONEY_WORDS and not env.endswith("_USDT"):
            bad.append(f"{env}: an amount of money without _usdt")
    return bad


@pytest.mark.parametrize("cls", [CommonSettings, *SERVICE_SETTINGS.values()],
                         ids=lambda c: c.__name__)
def test_unit_suffix_rule(cls):
    assert _unit_problems(cls) == []


def test_the_unit_rule_catches_the_old_names():
    class Old(CommonSettings):
        model_config = {"env_prefix": "TM_RISK_"}
        join_timeout_secs: float = 60.0
        cooldown: float = 1.0
        initial_equity: Decimal = Decimal(1)

    found = {x.split(':')[0] for x in _unit_problems(Old)}
    assert found == {"TM_RISK_JOIN_TIMEOUT_SECS", "TM_RISK_COOLDOWN", "TM_RISK_INITIAL_EQUITY"}


def test_renamed_attributes_keep_their_attribute_name():
    risk, portfolio, sim = (SERVICE_SETTINGS[n] for n in ("risk", "portfolio", "exchange_sim"))
    assert env_name(risk, "join_timeout_secs") == "TM_RISK_JOIN_TIMEOUT_S"
    assert env_name(risk, "cooldown_secs") == "TM_RISK_COOLDOWN_S"
    assert env_name(SERVICE_SETTINGS["sizer"], "join_timeout_s") == "TM_SIZER_JOIN_TIMEOUT_S"
    assert env_name(portfolio, "initial_equity") == "TM_PORTFOLIO_INITIAL_EQUITY_USDT"
    assert env_name(sim, "sim_initial_balance") == "TM_SIM_INITIAL_BALANCE_USDT"
    assert env_name(sim, "sim_seed") == "TM_SIM_SEED"        # not TM_SIM_SIM_SEED
