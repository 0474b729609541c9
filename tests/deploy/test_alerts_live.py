"""Alerts that tell the truth, checked as an SRE would: the local process stack (every service of
the table, production models in its registry), a real Prometheus on loopback loading
deploy/prometheus/rules, a real Alertmanager with deploy/alertmanager's routes, and the generic
webhook receiver (deploy/alertmanager/webhook_log.py).

Idle and healthy: no alert pending or firing, for a while (issue 18: TMServiceNotReady was pending
for every service because ``tm_service_ready`` only moved on ``/readyz`` calls). Then a breaker
trip through the admin endpoint, reset at once (open and closed again between two scrapes, the
trip the old TMBreakerOpen missed): TMBreakerOpen fires from the transition counter, and its
notification reaches the critical and trading receivers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from tm_common.testing import redis as test_redis
from tm_common.testing.processes import stop_process
from tm_common.testing.redis import delete_namespace, free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules"
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
WEBHOOK = ROOT / "deploy" / "alertmanager" / "webhook_log.py"
TOKEN = "alert-test-token-7f3c-0b9e4a"
SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
QUIET_S = 20.0          # idle and healthy: no alert, pending or firing, for this long
_spec = importlib.util.spec_from_file_location("tm_deploy_tests_stack",
                                               Path(__file__).with_name("test_stack.py"))
stack_mod = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = stack_mod   # dataclasses look their module up there
_spec.loader.exec_module(stack_mod)   # its helpers: start, wait, stop the process stack

pytestmark = pytest.mark.timeout(600)


def _post(url: str, body: dict | list, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _spawn(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _wait(pred, timeout_s: float, what):
    deadline = time.monotonic() + timeout_s
    got = None
    while time.monotonic() < deadline:
        try:
            got = pred()
        except (OSError, ValueError, KeyError):
            got = None
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s: {what() if callable(what) else what}")


async def _seed_models(db_url: str) -> None:
    """Production signal and regime models in the stack's registry (what the trainer leaves)."""
    from tm_common.history import load_bars
    from tm_common.models.registry import ModelRegistry
    from tm_common.testing.databases import migrated_engine
    from tm_regime.testing import fit_instrument, regime_bundle
    from tm_signal.testing import signal_bundle

    async with migrated_engine(db_url) as engine:
        reg = ModelRegistry(engine)
        first = load_bars("BTCUSDT")[0].open_time_ms
        await reg.register("signal", "s1", signal_bundle("s1", first_bar_ms=first, seed=1),
                           data_hash="t", features=[], params={}, seed=0, metrics={})
        await reg.promote("s1", "alert test")
        fit = fit_instrument("BTCUSDT", start=0, n_bars=1500, seed=7)
        await reg.register("regime", "r1", regime_bundle("r1", {s: fit for s in SYMS}),
                           data_hash="t", features=[], params={}, seed=0, metrics={})
        await reg.promote("r1", "alert test")


@pytest.fixture(scope="module")
def live(redis_url, deploy_tools, tmp_path_factory):
    """The stack, Prometheus (rules loaded, 2 s scrape and evaluation) and Alertmanager (deploy's
    routes, webhooks to the local receiver): a dict of their URLs and files."""
    tmp = tmp_path_factory.mktemp("alerts")
    namespace = test_redis.test_namespace()
    env = stack_mod._base_env(redis_url, namespace, tmp)
    env["TM_ADMIN_TOKEN"] = TOKEN
    asyncio.run(_seed_models(env["TM_DATABASE_URL"]))
    runnable = [s for s in stack_mod.SERVICES if not stack_mod.missing_reason(s.module)]
    procs, extra = [], []
    try:
        venue = [s for s in runnable if s.name == stack_mod.VENUE]
        procs += [stack_mod._start(venue[0], env, tmp)]
        failed = stack_mod._wait_healthy(procs, stack_mod.START_TIMEOUT_S)
        assert not failed, failed
        env.update(stack_mod._venue_env(procs[0].port))
        others = [stack_mod._start(s, env, tmp) for s in runnable if s.name != stack_mod.VENUE]
        procs += others
        failed = stack_mod._wait_healthy(others, stack_mod.START_TIMEOUT_S)
        assert not failed, json.dumps(failed, indent=1)
        started = {p.service.name: p for p in procs}

        hook_port, record = free_port(), tmp / "payloads.jsonl"
        extra.append(_spawn([sys.executable, str(WEBHOOK), "--host", "127.0.0.1", "--port",
                             str(hook_port), "--record", str(record)], tmp / "webhook.log"))
        am_cfg = yaml.safe_load(AM_CONFIG.read_text())
        for rcv in am_cfg["receivers"]:
            for w in rcv.get("webhook_configs", []):
                w["url"] = w["url"].replace("http://alert-webhook:9099",
                                            f"http://127.0.0.1:{hook_port}")
        am_cfg["route"]["group_wait"] = "1s"
        for r in am_cfg["route"]["routes"]:
            r["group_wait"] = "1s"
        (tmp / "am.yml").write_text(yaml.safe_dump(am_cfg))
        am_port = free_port()
        extra.append(_spawn([deploy_tools.alertmanager, f"--config.file={tmp / 'am.yml'}",
                             f"--storage.path={tmp / 'am-data'}",
                             f"--web.listen-address=127.0.0.1:{am_port}",
                             "--cluster.listen-address="], tmp / "am.log"))

        (tmp / "rules").mkdir()
        for f in RULES.glob("*.yml"):
            (tmp / "rules" / f.name).write_text(f.read_text())
        cfg = {"global": {"scrape_interval": "2s", "scrape_timeout": "2s",
                          "evaluation_interval": "2s"},
               "rule_files": [str(tmp / "rules" / "*.yml")],
               "alerting": {"alertmanagers": [{"static_configs": [
                   {"targets": [f"127.0.0.1:{am_port}"]}]}]},
               "scrape_configs": [{"job_name": "trade-matrix", "static_configs": [
                   {"targets": [f"127.0.0.1:{p.port}"],
                    "labels": {"system": "trade-matrix", "service": name.replace("_", "-")}}
                   for name, p in started.items()]}]}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        prom_port = free_port()
        extra.append(_spawn([deploy_tools.prometheus, f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'prom-data'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"], tmp / "prom.log"))
        yield {"prometheus": f"http://127.0.0.1:{prom_port}", "started": started,
               "record": record, "started_at": time.monotonic(), "tmp": tmp}
    finally:
        for p in extra:
            stop_process(p, 15, kill_wait_s=5)
        stack_mod._stop(procs)
        delete_namespace(redis_url, namespace)


def alerts(prom: str) -> list[dict]:
    status, body = stack_mod.http_get(f"{prom}/api/v1/alerts")
    doc = json.loads(body)
    assert status == 200 and doc["status"] == "success", body[:300]
    return doc["data"]["alerts"]


def brief(found: list[dict]) -> list[str]:
    return sorted(f"{a['labels']['alertname']}{{service={a['labels'].get('service')}}} {a['state']}"
                  for a in found)


def test_idle_and_healthy_no_alert_is_pending_or_firing(live):
    prom, want = live["prometheus"], {n.replace("_", "-") for n in live["started"]}

    def every_service_up_and_ready():
        up = stack_mod.query(prom, 'up{job="trade-matrix"} == 1')["result"]
        ready = {r["metric"]["service"]: r["value"][1]
                 for r in stack_mod.query(prom, "tm_service_ready")["result"]}
        # every service with a runtime exports the gauge (the simulator has none)
        return ({r["metric"]["service"] for r in up} == want
                and set(ready) == want - {"exchange-sim"}
                and set(ready.values()) == {"1"})

    _wait(every_service_up_and_ready, 120, lambda: (
        "up/ready per service: "
        f"{stack_mod.query(prom, 'tm_service_ready')['result']}"))
    # Nobody calls /readyz here: the gauge is 1 because the runtime evaluates it on its own.
    # Quiet for QUIET_S, and long enough that the rules' 1-minute look-backs have data.
    deadline = max(time.monotonic() + QUIET_S, live["started_at"] + 70)
    while time.monotonic() < deadline:
        found = alerts(prom)
        assert not found, f"idle and healthy, yet: {brief(found)}"
        time.sleep(2)


def test_a_breaker_trip_between_two_scrapes_fires_and_reaches_a_person(live):
    prom = live["prometheus"]
    risk = live["started"]["risk"].url
    status, body = _post(f"{risk}/breaker/trip", {"reason": "alert test"}, TOKEN)
    assert status == 200, body
    status, body = _post(f"{risk}/breaker/reset", {"reason": "alert test over"}, TOKEN)
    assert status == 200, body

    def breaker_open_firing():
        return [a for a in alerts(prom) if a["labels"]["alertname"] == "TMBreakerOpen"
                and a["state"] == "firing"]

    (a,) = _wait(breaker_open_firing, 60, lambda: f"alerts: {brief(alerts(prom))}")
    assert a["labels"]["service"] == "risk" and a["labels"]["severity"] == "critical"
    shown = stack_mod.query(prom, "max_over_time(tm_risk_breaker_state[5m])")["result"]
    print(f"breaker state as scraped over the trip: max {shown[0]['value'][1]} "
          "(0 = opened and closed between two scrapes)")
    counted = stack_mod.query(prom, 'tm_risk_breaker_transitions_total{to_state="OPEN"}')
    assert {r["metric"]["trigger"] for r in counted["result"]} == {"manual_trip"}
    others = [x for x in alerts(prom) if x["labels"]["alertname"] != "TMBreakerOpen"]
    assert not others, f"only the breaker alert, yet: {brief(others)}"

    record = live["record"]

    def notified():
        docs = [json.loads(ln) for ln in record.read_text().splitlines() if ln.strip()]
        got = {(d["path"], x["labels"]["alertname"]) for d in docs
               for x in d["payload"]["alerts"]}
        return got if {("/critical", "TMBreakerOpen"), ("/trading", "TMBreakerOpen")} <= got \
            else None

    _wait(notified, 60, lambda: f"webhook got: {record.read_text() if record.exists() else ''}")
