"""Grafana dashboards: generated output up to date, structure, provisioning.

Whether every metric they query exists is checked against the running services in
test_stack.py."""

from __future__ import annotations

import json
import subprocess
import sys
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
        assert p["title"] and p["datasource"]["uid"] == "${datasource}"
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${datasource}"
    assert len(ids) >= 8


def test_provisioning():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (prom,) = ds["datasources"]
    assert prom["type"] == "prometheus" and prom["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "trade-matrix.yml")
                          .read_text())
    (provider,) = prov["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
