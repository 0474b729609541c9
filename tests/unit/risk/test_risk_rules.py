"""The rules folder: ``RULES`` is the one documented order. The README's rule list is generated
from it, every rule module is in it once, and the decision applies exactly it, in order."""

from __future__ import annotations

import re
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import tm_risk.domain.rules as rules_pkg
from tm_risk.domain import decision
from tm_risk.domain.params import BreakerParams, RiskParams
from tm_risk.domain.rules import LIMITS, RULES, Rule, describe
from tm_risk.testing import N_BARS, command_env, make_params, warm_handler

README = Path(__file__).parents[3] / "services" / "risk" / "README.md"
RULES_DIR = Path(rules_pkg.__file__).parent
BLOCK = re.compile(r"<!-- rules: begin[^\n]*-->\n(.*?)\n<!-- rules: end -->", re.DOTALL)


def test_readme_rule_list_is_the_tuple():
    found = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(found) == 1, "services/risk/README.md needs one <!-- rules: begin/end --> block"
    assert found[0] == describe(), (
        "services/risk/README.md's rule list and tm_risk.domain.rules.RULES disagree; paste:\n"
        + describe())


def test_readme_lists_the_rule_names_in_tuple_order():
    (block,) = BLOCK.findall(README.read_text(encoding="utf-8"))
    names = re.findall(r"^\d+\. `(\w+)`", block, re.MULTILINE)
    assert names == [r.name for r in RULES]


def test_every_rule_module_is_in_the_tuple_once_under_its_own_name():
    modules = sorted(p.stem for p in RULES_DIR.glob("*.py") if p.stem not in ("__init__", "base"))
    names = [r.name for r in RULES]
    assert len(set(names)) == len(names)
    assert sorted(names) == modules
    for r in RULES:
        assert r.apply.__module__ == f"tm_risk.domain.rules.{r.name}" and r.summary


def test_limits_are_the_caps_slice_of_the_tuple():
    names = [r.name for r in RULES]
    start = names.index(LIMITS[0].name)
    assert names[start:start + len(LIMITS)] == [r.name for r in LIMITS]
    assert [r.name for r in LIMITS] == ["instrument_cap", "notional_cap", "risk_budget",
                                        "gross_cap", "net_cap"]


def test_defaults_quoted_in_the_rule_list_are_the_parameter_defaults():
    defaults = {f.name: f.default for cls in (RiskParams, BreakerParams) for f in fields(cls)}
    quoted = re.findall(r"`(\w+)` \(([\d.,]+)( %)?", describe())
    checked = 0
    for name, number, pct in quoted:
        if name not in defaults:
            continue
        value = Decimal(number.replace(",", "")) / (100 if pct else 1)
        assert value == Decimal(str(defaults[name])), f"{name}: README says {number}{pct or ''}"
        checked += 1
    assert checked >= 6


def _spied(calls: list[str]) -> tuple[Rule, ...]:
    """``RULES`` with each rule recording its name in ``calls`` when applied."""
    def spy(r: Rule) -> Rule:
        def apply(target, ctx):
            calls.append(r.name)
            return r.apply(target, ctx)
        return Rule(r.name, apply, r.summary)
    return tuple(spy(r) for r in RULES)


def test_the_decision_applies_the_tuple_in_order():
    h, _ = warm_handler()
    calls: list[str] = []
    d = decision.decide_target(h.state, make_params(), "BTCUSDT", N_BARS - 1, 0.3,
                               rules=_spied(calls))
    assert d.code == "approved" and calls == [r.name for r in RULES]
    assert decision.decide_target.__defaults__[-1] is RULES       # the service's order is RULES


def test_the_first_rejection_ends_the_decision():
    h, _ = warm_handler()
    h.process(command_env("trip"))
    calls: list[str] = []
    d = decision.decide_target(h.state, make_params(), "BTCUSDT", N_BARS - 1, 0.3,
                               rules=_spied(calls))
    assert d.code == "breaker_open" and calls == ["breaker_gate"] and d.orders == ()
