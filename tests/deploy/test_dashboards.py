"""Grafana dashboards: generated output up to date, structure, provisioning.

Whether every metric they query exists is checked against the running services in
test_stack.py."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def test_committed_json_is_the_builder_output():
    r = subprocess.run([sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_the_four_dashboards():
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    for want in ("Trading Cockpit", "Market Analysis", "Institutional Analytics",
                 "Infrastructure"):
        assert any(want in t for t in titles), want
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_structure(path):
    d = json.loads(path.read_text())
    assert d["schemaVersion"] >= 36 and d["uid"] and len(d["uid"]) <= 40
    assert d["templating"]["list"][0] == {**d["templating"]["list"][0], "name": "datasource",
                                          "type": "datasource", "query": "prometheus"}
    ids, cells = set(), set()
    for p in d["panels"]:
        assert p["id"] not in ids
        ids.add(p["id"])
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine
        if p["type"] == "row":
            continue
        # metric panels query the Prometheus variable, logs panels the Loki one
        want = "${logs}" if p["type"] == "logs" else "${datasource}"
        assert p["title"] and p["datasource"]["uid"] == want
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == want
    assert len(ids) >= 8


def test_provisioning():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (prom,) = ds["datasources"]
    assert prom["type"] == "prometheus" and prom["url"] == "http://prometheus:9090"
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "loki.yml").read_text())
    (loki,) = ds["datasources"]
    assert loki["type"] == "loki" and loki["uid"] == "loki" and loki["url"] == "http://loki:3100"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "trade-matrix.yml")
                          .read_text())
    (provider,) = prov["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts


# -- follow one bar: from the cockpit to the logs of one correlation id --------------------------
BAR_ID = "BTCUSDT:1735689600000"
TM_LOG_LINE = ('{"event": "sizer.sized", "level": "info", "timestamp": "2025-01-01T04:00:00.012Z", '
               f'"service": "sizer", "correlation_id": "{BAR_ID}", "instrument": "BTCUSDT"}}')


def _cockpit() -> dict:
    return json.loads((GRAFANA / "dashboards" / "trading-cockpit.json").read_text())


def test_the_cockpit_follows_one_bar_into_its_logs():
    d = _cockpit()
    names = {v["name"]: v for v in d["templating"]["list"]}
    assert names["logs"]["type"] == "datasource" and names["logs"]["query"] == "loki"
    assert names["correlation_id"]["type"] == "textbox"
    panels = {p["title"]: p for p in d["panels"]}
    (logs,) = [p for p in d["panels"] if p["type"] == "logs"]
    assert logs["targets"][0]["expr"] == '{system="trade-matrix"} | correlation_id="$correlation_id"'
    newest = panels["Newest bar per instrument (click: follow it in the logs)"]
    # the bar's correlation id is <instrument>:<open time ms>: the value shown, in ms
    assert newest["targets"][0]["expr"].endswith("(tm_ingest_last_bar_open_time_seconds) * 1000")
    links = newest["fieldConfig"]["defaults"]["links"]
    bar = "${__field.labels.instrument}:${__value.raw}"
    assert any(f"/d/{d['uid']}/?var-correlation_id={bar}" in x["url"] for x in links)
    explore = next(x["url"] for x in links if x["url"].startswith("/explore?"))
    pane = json.loads(urllib.parse.unquote(explore.split("panes=", 1)[1]))["bar"]
    assert pane["queries"][0]["expr"] == '{system="trade-matrix"} | correlation_id="' + bar + '"'
    top = next(x for x in d["links"] if x.get("type") == "link")
    assert "correlation_id%3D%5C%22${correlation_id}" in top["url"]


def test_the_correlation_id_format_is_what_ingest_stamps():
    """The cockpit builds <instrument>:<open time ms>: the bar envelope's correlation id."""
    from decimal import Decimal

    from tm_common.events import BarClosed
    from tm_ingest.publisher import bar_envelope
    b = BarClosed(instrument="BTCUSDT", interval_min=240, open_time_ms=1_735_689_600_000,
                  close_time_ms=1_735_703_999_999, open=Decimal(1), high=Decimal(1),
                  low=Decimal(1), close=Decimal(1), volume=Decimal(1), source="replay")
    assert bar_envelope(b, 0).correlation_id == BAR_ID


def test_the_shipper_produces_the_labels_the_queries_use():
    """deploy/alloy/config.alloy: the JSON fields of a Trade-Matrix log line become the labels
    service, level, instrument, system and the structured metadata correlation_id that the
    cockpit's queries and the Loki datasource's derived field use."""
    alloy = (ROOT / "deploy" / "alloy" / "config.alloy").read_text()
    code = "\n".join(ln for ln in alloy.splitlines() if not ln.lstrip().startswith("//"))
    assert re.search(r'source_labels\s*=\s*\["__meta_docker_container_label_com_docker_compose_'
                     r'service"\]\s*target_label\s*=\s*"service"', code)
    json_stage = re.search(r"stage\.json\s*{(.*?)\n  }", code, re.S).group(1)
    for field in ("level", "instrument", "correlation_id"):
        assert re.search(rf'\b{field}\s*=\s*"{field}"', json_stage), field
    labels = re.search(r"stage\.labels\s*{(.*?)\n  }", code, re.S).group(1)
    assert set(re.findall(r"(\w+)\s*=", labels)) == {"values", "level", "instrument"}
    meta = re.search(r"stage\.structured_metadata\s*{(.*?)\n  }", code, re.S).group(1)
    assert "correlation_id" in meta
    assert re.search(r'system\s*=\s*"trade-matrix"', code)
    assert 'url = "http://loki:3100/loki/api/v1/push"' in code
    loki = yaml.safe_load((ROOT / "deploy" / "loki" / "loki.yml").read_text())
    assert loki["limits_config"]["allow_structured_metadata"] is True
    assert loki["schema_config"]["configs"][0]["schema"] == "v13"    # structured metadata needs it
    # the derived field of the Loki datasource finds the id in a real log line
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "loki.yml").read_text())
    (field,) = ds["datasources"][0]["jsonData"]["derivedFields"]
    m = re.search(field["matcherRegex"], TM_LOG_LINE)
    assert m and m.group(1) == BAR_ID
    # "$$" is Grafana provisioning's escape for a literal "$"
    assert field["url"] == '{system="trade-matrix"} | correlation_id="$${__value.raw}"'


def test_a_service_log_line_has_the_fields_the_shipper_reads():
    """tm_common.logging writes level, instrument and correlation_id as top-level JSON keys."""
    import structlog
    from tm_common.logging import bound_event, configure_logging
    from tm_common.settings import CommonSettings
    from tm_common.testing.factories import bar_event

    out = io.StringIO()
    configure_logging(CommonSettings(service_name="sizer", log_json=True), stream=out)
    ev = bar_event("BTCUSDT", 3)
    with bound_event(ev):
        structlog.get_logger("t").info("sizer.sized")
    line = [ln for ln in out.getvalue().splitlines() if "sizer.sized" in ln][-1]
    doc = json.loads(line)
    assert doc["level"] == "info" and doc["instrument"] == "BTCUSDT" and doc["service"] == "sizer"
    assert doc["correlation_id"] == ev.correlation_id
    assert re.search(ds_regex(), line).group(1) == ev.correlation_id


def ds_regex() -> str:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "loki.yml").read_text())
    return ds["datasources"][0]["jsonData"]["derivedFields"][0]["matcherRegex"]
