"""Prometheus files: promtool check config/rules, the rule unit tests, scrape targets vs the
service table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tm_app.stack.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))


def test_promtool_check_config(deploy_tools, sh):
    r = sh([deploy_tools.promtool, "check", "config", "prometheus.yml"], cwd=PROM)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(RULES)} rule files found" in r.stdout + r.stderr


def test_promtool_check_rules(deploy_tools, sh):
    assert (PROM / "rules" / "trade-matrix.yml") in RULES
    r = sh([deploy_tools.promtool, "check", "rules", *map(str, RULES)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_rule_unit_tests(deploy_tools, sh):
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    r = sh([deploy_tools.promtool, "test", "rules", *[t.name for t in tests]], cwd=PROM / "tests")
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_required_alerts_exist():
    rules = [r for f in RULES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]
    by_name = {r["alert"]: r for r in rules if "alert" in r}
    for name, needle in {"TMBreakerOpen": "tm_risk_breaker_state",
                         "TMConsumerLagHigh": "tm_consumer_lag",
                         "TMStaleMarketData": "tm_ingest_last_bar_open_time_seconds",
                         "TMDeadLettersGrowing": "tm_events_dead_lettered_total",
                         "TMServiceDown": "up{",
                         "TMExchangeErrorRate": "tm_executor_exchange_errors_total",
                         "TMInstrumentDelistingScheduled":
                             "tm_risk_instrument_delivery_time_seconds",
                         "TMInstrumentNotTrading": "tm_risk_instrument_trading"}.items():
        assert needle in by_name[name]["expr"], name
    # issue 18: breaker alerts count transitions (a trip between two scrapes still fires); the
    # drawdown alert reads the breaker's own drawdown
    assert "increase(tm_risk_breaker_transitions_total" in by_name["TMBreakerOpen"]["expr"]
    assert "tm_risk_drawdown_ratio" in by_name["TMDrawdownHigh"]["expr"]
    assert "tm_portfolio_drawdown_ratio" not in by_name["TMDrawdownHigh"]["expr"]
    for name in ("TMBreakerKilled", "TMLossLimitTripped", "TMModelPromoted", "TMLargeRebalance",
                 "TMInstrumentDelistingScheduled", "TMInstrumentNotTrading"):
        assert by_name[name]["labels"]["category"] == "trading", name
    for r in by_name.values():
        assert r["labels"]["severity"] in ("critical", "warning", "info")
        assert r["annotations"]["summary"] and r["annotations"]["description"]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_compose_prometheus_scrapes_every_service(service):
    cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
    statics = [sc for job in cfg["scrape_configs"] for sc in job.get("static_configs", [])]
    name = service.name.replace("_", "-")
    match = [sc for sc in statics if f"{name}:{service.port}" in sc["targets"]]
    assert match, f"{name}:{service.port} is not scraped"
    assert match[0]["labels"] == {"system": "trade-matrix", "service": name}


def test_the_chart_ships_the_same_rules():
    """helm/trade-matrix/files/rules is a copy (Helm reads files inside the chart only):
    deploy/grafana/build_dashboards.py writes it; a hand edit of one side fails here."""
    chart = ROOT / "helm" / "trade-matrix" / "files" / "rules"
    assert sorted(p.name for p in chart.glob("*.yml")) == [p.name for p in RULES]
    for rules in RULES:
        assert (chart / rules.name).read_bytes() == rules.read_bytes(), rules.name
