"""The building blocks of the Grafana dashboards that ``build_dashboards.py`` describes: a query
target, the panel kinds (time series, stat, state timeline, table, logs), rows, value mappings,
the grid layout, template variables and the dashboard frame. Standard library only."""

from __future__ import annotations

import json
from urllib.parse import quote

DS = {"type": "prometheus", "uid": "${datasource}"}
LOGS = {"type": "loki", "uid": "${logs}"}

def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "time_series",
           ref: str = "A") -> dict:
    t = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": ref,
         "range": not instant, "instant": instant}
    if fmt != "time_series":
        t["format"] = fmt
    return t


def _targets(queries) -> list[dict]:
    out = []
    for i, q in enumerate(queries):
        expr, legend = (q, "") if isinstance(q, str) else q
        out.append(target(expr, legend, ref=chr(ord("A") + i)))
    return out


def timeseries(title: str, queries, *, unit: str = "short", w: int = 12, h: int = 8,
               desc: str = "", stack: bool = False, bars: bool = False,
               minimum: float | None = None) -> dict:
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 10,
              "showPoints": "never", "spanNulls": True,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    defaults: dict = {"unit": unit, "custom": custom}
    if minimum is not None:
        defaults["min"] = minimum
    return {"type": "timeseries", "title": title, "description": desc, "datasource": DS,
            "targets": _targets(queries), "w": w, "h": h,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, queries, *, unit: str = "short", w: int = 4, h: int = 4, desc: str = "",
         mappings: list | None = None, thresholds: list | None = None,
         decimals: int | None = None) -> dict:
    defaults: dict = {"unit": unit, "mappings": mappings or [],
                      "thresholds": {"mode": "absolute",
                                     "steps": thresholds or [{"color": "green", "value": None}]}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"type": "stat", "title": title, "description": desc, "datasource": DS,
            "targets": _targets(queries), "w": w, "h": h,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "none", "textMode": "auto",
                        "justifyMode": "auto", "orientation": "auto"}}


def state_timeline(title: str, queries, *, mappings: list, w: int = 12, h: int = 6,
                   desc: str = "") -> dict:
    return {"type": "state-timeline", "title": title, "description": desc, "datasource": DS,
            "targets": _targets(queries), "w": w, "h": h,
            "fieldConfig": {"defaults": {"mappings": mappings, "custom": {"fillOpacity": 80},
                                         "thresholds": {"mode": "absolute", "steps": [
                                             {"color": "text", "value": None}]}},
                            "overrides": []},
            "options": {"showValue": "auto", "mergeValues": True, "rowHeight": 0.9,
                        "legend": {"showLegend": False}}}


def table(title: str, expr: str, *, w: int = 12, h: int = 6, desc: str = "",
          hide: tuple[str, ...] = ("Time", "Value", "__name__")) -> dict:
    return {"type": "table", "title": title, "description": desc, "datasource": DS,
            "targets": [target(expr, instant=True, fmt="table")], "w": w, "h": h,
            "fieldConfig": {"defaults": {}, "overrides": []},
            "transformations": [{"id": "organize", "options": {
                "excludeByName": {k: True for k in hide}}}],
            "options": {"showHeader": True}}


def logs(title: str, expr: str, *, w: int = 24, h: int = 10, desc: str = "") -> dict:
    """A Loki logs panel (the ``logs`` datasource variable)."""
    return {"type": "logs", "title": title, "description": desc, "datasource": LOGS,
            "targets": [{"datasource": LOGS, "expr": expr, "refId": "A", "queryType": "range"}],
            "w": w, "h": h,
            "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Ascending",
                        "enableLogDetails": True, "prettifyLogMessage": False,
                        "dedupStrategy": "none"}}


def explore_logs_url(expr: str, *, datasource_uid: str = "loki", time_from: str = "now-30d") -> str:
    """Grafana Explore showing the Loki query ``expr`` (template variables left for Grafana to
    fill in: ``${...}`` stays unencoded)."""
    panes = {"bar": {"datasource": datasource_uid, "queries": [
        {"refId": "A", "expr": expr, "queryType": "range",
         "datasource": {"type": "loki", "uid": datasource_uid}}],
        "range": {"from": time_from, "to": "now"}}}
    return "/explore?schemaVersion=1&orgId=1&panes=" + quote(
        json.dumps(panes, separators=(",", ":")), safe="${}:")


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "w": 24, "h": 1}


def value_map(*pairs: tuple[int, str, str]) -> list[dict]:
    return [{"type": "value", "options": {str(v): {"text": text, "color": color, "index": i}
                                          for i, (v, text, color) in enumerate(pairs)}}]


def layout(panels: list[dict]) -> list[dict]:
    """Place panels left to right, wrapping at 24 columns; ids in order."""
    x = y = row_h = 0
    out = []
    for i, p in enumerate(panels, start=1):
        p = dict(p)
        w, h = p.pop("w"), p.pop("h")
        if x + w > 24 or p["type"] == "row":
            x, y, row_h = 0, y + row_h, 0
        p["id"] = i
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
        out.append(p)
    return out


def variable_datasource() -> dict:
    return {"name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "options": []}


def variable_logs_datasource() -> dict:
    return {"name": "logs", "label": "Loki", "type": "datasource", "query": "loki",
            "current": {}, "hide": 0, "refresh": 1, "options": []}


def variable_textbox(name: str, label: str, default: str = "") -> dict:
    return {"name": name, "label": label, "type": "textbox", "query": default,
            "current": {"selected": False, "text": default, "value": default}, "hide": 0,
            "options": []}


def variable_query(name: str, query: str, label: str) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1,
            "hide": 0, "options": []}


def dashboard(uid: str, title: str, description: str, panels: list[dict], *,
              variables: list[dict] = (), time_from: str = "now-7d",
              links: list[dict] = ()) -> dict:
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["trade-matrix"], "timezone": "utc", "editable": True, "graphTooltip": 1,
        "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": [variable_datasource(), *variables]},
        "annotations": {"list": [{
            "name": "Breaker transitions", "datasource": DS, "enable": True,
            "iconColor": "red", "expr": "changes(tm_risk_breaker_state[2m]) > 0",
            "step": "1m", "titleFormat": "breaker state changed"}]},
        "links": [{"title": "Trade-Matrix", "type": "dashboards", "tags": ["trade-matrix"],
                   "asDropdown": True}, *links],
        "panels": layout(panels),
    }


def red_above(v: float) -> list[dict]:
    return [{"color": "green", "value": None}, {"color": "red", "value": v}]


# -- what the dashboards share: log queries, label matchers, value mappings --------------------

# Logs (Loki, fed by deploy/alloy/config.alloy): every Trade-Matrix line carries system=...;
# correlation_id is structured metadata, "<instrument>:<bar open time ms>" for a bar's chain.
BAR_LOGS = '{system="trade-matrix"} | correlation_id="%s"'
TM = 'system="trade-matrix"'
RI = "$__rate_interval"
BREAKER = value_map((0, "CLOSED", "green"), (1, "HALF_OPEN", "orange"), (2, "OPEN", "red"))
REGIMES = value_map((0, "Crisis", "red"), (1, "Bear", "orange"), (2, "Neutral", "yellow"),
                    (3, "Bull", "green"))
UPDOWN = value_map((0, "DOWN", "red"), (1, "UP", "green"))
READY = value_map((0, "NOT READY", "orange"), (1, "READY", "green"))
LISTING = value_map((0, "NOT TRADING", "red"), (1, "Trading", "green"))
INST = 'instrument=~"$instrument"'
