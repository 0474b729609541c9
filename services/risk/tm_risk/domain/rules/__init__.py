"""The risk rules, one small module each, and :data:`RULES`: the order in which they apply to one
sized target. That tuple is the documented order: :func:`tm_risk.domain.decision.decide_target`
iterates it, :func:`describe` renders it for ``services/risk/README.md``, and
``tests/unit/risk/test_risk_rules.py`` fails when the README and the tuple disagree.

A rule is a pure ``apply(target, ctx)`` (:class:`~tm_risk.domain.rules.base.Rule`): it returns the
target to pass on (the same, or a changed copy) or a rejection that ends the decision. It reads the
state through the context and never changes it. To add one: a module here with a docstring (its
first paragraph is the summary), ``apply`` and ``RULE = rule("<module name>", apply, __doc__)``;
put its ``RULE`` into :data:`RULES` at its place; regenerate the README block (:func:`describe`).
"""

from __future__ import annotations

import re
import textwrap

from tm_risk.domain.rules import (
    breaker_gate,
    delisting,
    gross_cap,
    half_open,
    inputs,
    instrument_cap,
    lot_rounding,
    min_delta,
    net_cap,
    notional_cap,
    order_legs,
    risk_budget,
    var_limit,
    var_rescale,
)
from tm_risk.domain.rules.base import (
    ApprovedOrder,
    Context,
    Rejection,
    Rule,
    Target,
    exposures,
)

RULES: tuple[Rule, ...] = (
    breaker_gate.RULE,
    inputs.RULE,
    delisting.RULE,
    half_open.RULE,
    instrument_cap.RULE,
    notional_cap.RULE,
    risk_budget.RULE,
    gross_cap.RULE,
    net_cap.RULE,
    var_limit.RULE,
    lot_rounding.RULE,
    min_delta.RULE,
    order_legs.RULE,
    var_rescale.RULE,
)
"""Every rule, in the order applied to one target."""

LIMITS: tuple[Rule, ...] = RULES[RULES.index(instrument_cap.RULE): RULES.index(net_cap.RULE) + 1]
"""The caps (a slice of :data:`RULES`): each only moves the target toward zero."""


def describe(rules: tuple[Rule, ...] = RULES, width: int = 100) -> str:
    """The rules as a numbered Markdown list (name and summary), wrapped at ``width``: the block
    that ``services/risk/README.md`` carries between its ``rules`` markers (Sphinx roles and
double backquotes become Markdown code)."""
    items = []
    for i, r in enumerate(rules, 1):
        head = f"{i}. `{r.name}`: "
        text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", r.summary).replace("``", "`")
        items.append(textwrap.fill(text, width, initial_indent=head,
                                   subsequent_indent=" " * len(f"{i}. "),
                                   break_on_hyphens=False, break_long_words=False))
    return "\n".join(items)


__all__ = ["LIMITS", "RULES", "ApprovedOrder", "Context", "Rejection", "Rule", "Target",
           "describe", "exposures"]
