"""Alerts reach a person: deploy/alertmanager's configuration (amtool), its routes by severity and
category, and a real Alertmanager delivering an alert to the generic webhook receiver
(deploy/alertmanager/webhook_log.py), whose payload and log line are checked."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from tm_common.testing.processes import stop_process
from tm_common.testing.redis import free_port

ROOT = Path(__file__).resolve().parents[2]
AM = ROOT / "deploy" / "alertmanager"
CONFIGS = [AM / "alertmanager.yml", AM / "examples" / "slack-telegram.yml"]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "trade-matrix.yml"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_amtool_check_config(deploy_tools, sh, path):
    r = sh([deploy_tools.amtool, "check-config", str(path)])
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("labels, receivers", [
    ({"severity": "critical", "category": "trading", "alertname": "TMBreakerOpen"},
     "critical,trading"),
    ({"severity": "critical", "alertname": "TMServiceDown"}, "critical"),
    ({"severity": "info", "category": "trading", "alertname": "TMModelPromoted"}, "trading"),
    ({"severity": "warning", "alertname": "TMConsumerLagHigh"}, "warning"),
    ({"severity": "info", "alertname": "X"}, "info"),
    ({"alertname": "X"}, "default"),
], ids=["critical-trading", "critical", "trading-info", "warning", "info", "unlabelled"])
def test_routes_by_severity_and_category(deploy_tools, sh, labels, receivers):
    args = [f"{k}={v}" for k, v in labels.items()]
    r = sh([deploy_tools.amtool, "config", "routes", "test",
            f"--config.file={CONFIGS[0]}", *args])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == receivers, f"{labels} -> {r.stdout.strip()}, want {receivers}"


def test_every_rule_has_a_route_to_a_person():
    """Each alert rule's severity is one that a route names (no rule falls to "default")."""
    cfg = yaml.safe_load(CONFIGS[0].read_text())
    routed = {m.split("=", 1)[1].strip('"') for r in cfg["route"]["routes"]
              for m in r["matchers"] if m.startswith("severity=")}
    for g in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in g["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in routed, rule["alert"]
    urls = [w["url"] for rcv in cfg["receivers"] for w in rcv.get("webhook_configs", [])]
    assert urls and all(u.startswith("http://alert-webhook:9099/") for u in urls)


def _http(url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def _wait(pred, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            got = pred()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture
def webhook(tmp_path):
    """deploy/alertmanager/webhook_log.py on loopback: (url, record file, log file)."""
    port, record, log = free_port(), tmp_path / "payloads.jsonl", tmp_path / "webhook.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, str(AM / "webhook_log.py"), "--host", "127.0.0.1",
                                 "--port", str(port), "--record", str(record)],
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _http(url)[0] == 200, 15, "the webhook to listen")
        yield url, record, log
    finally:
        stop_process(proc, 10, kill_wait_s=5)


@pytest.fixture
def alertmanager(deploy_tools, webhook, tmp_path):
    """The real Alertmanager with deploy's routes and receivers, webhooks pointed at the local
    receiver and the group waits shortened to 1 s; its URL."""
    url, _, _ = webhook
    cfg = yaml.safe_load(CONFIGS[0].read_text())
    for rcv in cfg["receivers"]:
        for w in rcv.get("webhook_configs", []):
            w["url"] = w["url"].replace("http://alert-webhook:9099", url)
    cfg["route"]["group_wait"] = "1s"
    for r in cfg["route"]["routes"]:
        r["group_wait"] = "1s"
    (tmp_path / "am.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    with open(tmp_path / "am.log", "wb") as fh:
        proc = subprocess.Popen([deploy_tools.alertmanager, f"--config.file={tmp_path / 'am.yml'}",
                                 f"--storage.path={tmp_path / 'am-data'}",
                                 f"--web.listen-address=127.0.0.1:{port}",
                                 "--cluster.listen-address="],
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    am = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _http(f"{am}/-/ready")[0] == 200, 30,
              f"alertmanager ready ({(tmp_path / 'am.log').read_text(errors='replace')[-500:]})")
        yield am
    finally:
        stop_process(proc, 10, kill_wait_s=5)


def test_an_alert_reaches_the_webhook_by_its_route(alertmanager, webhook):
    """A critical trading alert goes to the critical and trading receivers, a warning to the
    warning receiver; the payload is Alertmanager's webhook (version 4) with the rule's labels
    and annotations; the receiver logs one JSON line per alert."""
    _, record, log = webhook
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    alerts = [
        {"labels": {"alertname": "TMBreakerOpen", "severity": "critical", "category": "trading",
                    "service": "risk"},
         "annotations": {"summary": "Circuit breaker OPENED: positions are being flattened"},
         "startsAt": now},
        {"labels": {"alertname": "TMConsumerLagHigh", "severity": "warning", "service": "signal",
                    "stream": "md.bar", "group": "signal"},
         "annotations": {"summary": "signal is 80 entries behind on md.bar"}, "startsAt": now},
    ]
    status, _ = _http(f"{alertmanager}/api/v2/alerts", json.dumps(alerts).encode())
    assert status == 200

    def delivered():
        if not record.exists():
            return None
        docs = [json.loads(ln) for ln in record.read_text().splitlines() if ln.strip()]
        paths = {d["path"] for d in docs}
        return docs if {"/critical", "/trading", "/warning"} <= paths else None

    docs = _wait(delivered, 30, "the three deliveries")
    by_path = {d["path"]: d["payload"] for d in docs}
    assert "/default" not in by_path and "/info" not in by_path
    crit = by_path["/critical"]
    assert crit["version"] == "4" and crit["status"] == "firing" and crit["receiver"] == "critical"
    (a,) = crit["alerts"]
    assert a["labels"] == alerts[0]["labels"] and a["status"] == "firing"
    assert a["annotations"]["summary"] == "Circuit breaker OPENED: positions are being flattened"
    assert by_path["/trading"]["receiver"] == "trading"
    assert by_path["/trading"]["alerts"][0]["labels"]["alertname"] == "TMBreakerOpen"
    (w,) = by_path["/warning"]["alerts"]
    assert w["labels"]["alertname"] == "TMConsumerLagHigh"
    logged = [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith("{")]
    crit_lines = [ln for ln in logged if ln.get("route") == "critical"]
    assert crit_lines and crit_lines[0] | {"timestamp": None} == crit_lines[0] | {
        "timestamp": None, "event": "alert.firing", "level": "error", "alertname": "TMBreakerOpen",
        "alert_service": "risk", "category": "trading", "severity": "critical"}


def test_the_webhook_refuses_what_is_not_a_payload(webhook):
    url, record, _ = webhook
    with pytest.raises(urllib.error.HTTPError) as e:
        _http(f"{url}/x", b"not json")
    assert e.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as e:
        _http(f"{url}/x", b"[1, 2]")
    assert e.value.code == 400
    assert not record.exists()
