"""Metric names in PromQL expressions, and matching them against scraped metric families.

Not a PromQL parser: enough to find every metric selector in the expressions this project ships
(alert rules, Grafana panels). The real Prometheus server in ``test_stack.py`` parses every
expression as well, so a syntax this misreads would still be caught there.
"""

from __future__ import annotations

import re

# Words that look like identifiers and are not metric names.
KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "atan2", "inf", "nan", "start", "end",
})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_GRAFANA_VAR = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?")
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:([A-Za-z_:][A-Za-z0-9_:]*)[^,]*,)?\s*\w+\s*\)\s*$")

# How a sample name relates to its family name in the text exposition.
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created"),
             "counter": ("_total", "_created"),
             "gaugehistogram": ("_bucket", "_gsum", "_gcount")}


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (Grafana variables allowed).

    ``label_values(metric, label)`` (a Grafana variable query) gives ``metric``.
    """
    m = _LABEL_VALUES.match(expr)
    if m:
        return {m.group(1)} if m.group(1) else set()
    s = _STRING.sub('""', expr)
    s = _GRAFANA_VAR.sub("1", s)
    s = _BRACES.sub(" ", s)
    s = _RANGE.sub(" ", s)
    s = _GROUPING.sub(" ", s)
    names = set()
    for m in _IDENT.finditer(s):
        word = m.group(1)
        rest = s[m.end():].lstrip()
        if rest.startswith("("):        # a function or an aggregation
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def families(exposition: str) -> dict[str, str]:
    """``{family name: type}`` from the ``# TYPE`` lines of a text exposition.

    A labelled metric that has not seen an event yet has no samples but still has its ``# TYPE``
    line, so this is every metric the process defines, not only those with values.
    """
    out = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                out[parts[2]] = parts[3]
    return out


def resolve(name: str, known: dict[str, str]) -> str | None:
    """The family that exports sample name ``name``, or ``None``.

    ``x_bucket``/``x_sum``/``x_count`` belong to histogram (or summary) ``x``; ``x_total`` to
    counter ``x_total`` (prometheus_client writes the suffix in the TYPE line) or counter ``x``
    (other clients do not).
    """
    if name in known:
        return name
    for family, kind in known.items():
        for suffix in _SUFFIXES.get(kind, ()):
            if name == family + suffix:
                return family
            # Counter families may be declared with or without _total.
            if kind == "counter" and family.endswith("_total") and name + "_total" == family:
                return None  # the sample always carries _total: a query without it is empty
    if name.endswith("_total") and known.get(name.removesuffix("_total")) == "counter":
        return name.removesuffix("_total")
    return None


def base_name(name: str) -> str:
    """``name`` without a sample suffix (for looking a definition up in source code)."""
    for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
