"""The Helm chart: lint, render and schema-validate every service's values file; what a rendered
Deployment must contain; secrets only by reference; optional ServiceMonitor; trainer CronJob."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from tm_app.stack.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "trade-matrix"
VALUES = sorted((ROOT / "helm" / "values").glob("*.yaml"))
SECRETISH = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|DATABASE_URL)$")


def values_of(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def k8s_name(service_name: str) -> str:
    return service_name.replace("_", "-")


_rendered: dict[tuple, str] = {}


def render(tools, sh, values: Path, *extra: str) -> str:
    key = (values, extra)
    if key not in _rendered:
        r = sh([tools.helm, "template", values.stem, str(CHART), "-f", str(values),
                "--namespace", "trading", *extra])
        assert r.returncode == 0, f"helm template {values.name}:\n{r.stderr}"
        _rendered[key] = r.stdout
    return _rendered[key]


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def one(objs: list[dict], kind: str) -> dict:
    found = [d for d in objs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod_spec(objs: list[dict]) -> dict:
    for d in objs:
        if d["kind"] == "Deployment":
            return d["spec"]["template"]["spec"]
        if d["kind"] == "CronJob":
            return d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    raise AssertionError("no workload rendered")


def test_every_service_of_the_table_has_a_values_file():
    names = {p.stem for p in VALUES}
    for s in SERVICES:
        assert k8s_name(s.name) in names, f"helm/values/{k8s_name(s.name)}.yaml is missing"
        v = values_of(ROOT / "helm" / "values" / f"{k8s_name(s.name)}.yaml")["service"]
        assert v["port"] == s.port, f"{s.name}: port {v['port']} != service table {s.port}"
        assert v.get("module", f"tm_{s.name}") == s.module
    assert "trainer" in names


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_helm_lint_strict(deploy_tools, sh, values):
    r = sh([deploy_tools.helm, "lint", "--strict", str(CHART), "-f", str(values)])
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def validation(deploy_tools, sh, tmp_path_factory) -> str:
    """One kubernetes-validate run over every values file's manifests (it takes ~2 s to start):
    its output, one line per resource, prefixed by the file name (``<values stem>.yaml``)."""
    d = tmp_path_factory.mktemp("manifests")
    files = []
    for v in VALUES:
        (d / v.name).write_text(render(deploy_tools, sh, v))
        files.append(v.name)
    r = sh([*deploy_tools.kubernetes_validate, "--strict", "-k", "1.33.0", *files], cwd=d)
    return r.stdout + r.stderr


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_rendered_manifests_pass_kubernetes_validate(deploy_tools, sh, validation, values):
    text = render(deploy_tools, sh, values)
    mine = [ln for ln in validation.splitlines() if f" {values.name} " in ln]
    problems = [ln for ln in mine if not ln.startswith("INFO")]
    assert not problems, "\n".join(problems)
    for d in docs(text):
        resource = f"{d['kind'].lower()}/{d['metadata']['name']}"
        assert f"passed for resource {resource} against version 1.33" in "\n".join(mine), \
            f"{values.name}: {resource} not validated:\n{validation}"
    kinds = [d["kind"] for d in docs(text)]
    assert "Secret" not in kinds, "the chart must not create Secrets"


@pytest.mark.parametrize("values", [v for v in VALUES
                                    if values_of(v)["service"].get("kind", "deployment")
                                    == "deployment"], ids=lambda p: p.stem)
def test_deployment(deploy_tools, sh, values):
    v = values_of(values)
    name, port = v["service"]["name"], v["service"]["port"]
    objs = docs(render(deploy_tools, sh, values))
    dep = one(objs, "Deployment")
    assert dep["metadata"]["name"] == name
    # one writer per stateful service: the old pod is gone before the new one starts
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["spec"]["replicas"] == 1
    tmpl = dep["spec"]["template"]
    ann = tmpl["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == str(port)
    assert ann["prometheus.io/path"] == "/metrics" and "checksum/config" in ann
    spec = tmpl["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    (c,) = spec["containers"]
    module = v["service"].get("module", f"tm_{name.replace('-', '_')}")
    assert c["command"] == ["python", "-m", module]
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {vol["name"]: vol for vol in spec["volumes"]}
    for path in ("/tmp", "/var/lib/tm"):
        assert path in mounts and "emptyDir" in vols[mounts[path]], f"{path} is not an emptyDir"
    env = {e["name"]: e for e in c["env"]}
    assert env["TM_CONSUMER_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}

    cm = one(objs, "ConfigMap")
    assert c["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]
    assert cm["data"]["TM_HTTP_PORT"] == str(port) and cm["data"]["TM_HTTP_HOST"] == "0.0.0.0"
    assert cm["data"]["TM_DATA_DIR"] == "/var/lib/tm"

    svc = one(objs, "Service")
    assert svc["metadata"]["name"] == name
    assert svc["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http",
                                     "protocol": "TCP"}]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    assert not [d for d in objs if d["kind"] == "ServiceMonitor"]


@pytest.mark.parametrize("extra, error", [
    (["--set", "replicaCount=2"], "at '/replicaCount': maximum: got 2, want 1"),
    (["--set", "strategy.type=RollingUpdate"], "at '/strategy/type': value must be 'Recreate'"),
    (["--set", "strategy.rollingUpdate.maxSurge=1"], "at '/strategy'"),
], ids=["two-replicas", "rolling-update", "surge"])
def test_the_schema_holds_a_stateful_service_at_one_recreated_replica(deploy_tools, sh, extra,
                                                                      error):
    """Two pods of one stateful service would both write its state (invariant 8): the values
    schema refuses every way to get there, for every service of the chart (stateful by
    default); ``stateful: false`` lifts it, for a stateless service."""
    for name in ("risk", "executor", "ingest"):
        values = ROOT / "helm" / "values" / f"{name}.yaml"
        r = sh([deploy_tools.helm, "template", name, str(CHART), "-f", str(values), *extra])
        assert r.returncode != 0 and error in r.stderr, f"{name} {extra}: {r.stderr}"
    values = ROOT / "helm" / "values" / "risk.yaml"
    text = render(deploy_tools, sh, values, "--set", "stateful=false", "--set", "replicaCount=2",
                  "--set", "strategy.type=RollingUpdate")
    dep = one(docs(text), "Deployment")
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_the_executors_single_writer_promise_holds(deploy_tools, sh):
    """helm/values/executor.yaml says: never two executors at once, even during an upgrade."""
    values = ROOT / "helm" / "values" / "executor.yaml"
    assert "never two executors at once" in values.read_text()
    dep = one(docs(render(deploy_tools, sh, values)), "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_no_secret_values_inline(deploy_tools, sh, values):
    """Secret-looking settings come from secretKeyRef; the ConfigMap and env carry none."""
    objs = docs(render(deploy_tools, sh, values))
    c = pod_spec(objs)["containers"][0]
    for e in c["env"]:
        if SECRETISH.search(e["name"]):
            assert "value" not in e and "secretKeyRef" in e["valueFrom"], e
    cm = one(objs, "ConfigMap")
    for k, val in cm["data"].items():
        assert not SECRETISH.search(k), f"ConfigMap key {k} looks like a secret"
        assert not re.search(r"://[^/@\s]*:[^/@\s]+@", val), f"{k} has a password in a URL"
    v = values_of(values)
    if v.get("database", {}).get("existingSecret", "trade-matrix-database"):
        db = {e["name"]: e for e in c["env"]}["TM_DATABASE_URL"]
        assert db["valueFrom"]["secretKeyRef"]["key"] == "database-url"


def test_redis_password_from_a_secret(deploy_tools, sh):
    values = ROOT / "helm" / "values" / "signal.yaml"
    objs = docs(render(deploy_tools, sh, values, "--set", "redis.existingSecret=redis-auth",
                       "--set", "redis.host=redis.data.svc", "--set", "redis.tls=true"))
    env = {e["name"]: e for e in pod_spec(objs)["containers"][0]["env"]}
    # its own ACL user, its own key of the Secret (tests/deploy/test_helm_redis_acl.py)
    assert env["TM_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-auth",
                                                                    "key": "signal"}
    names = [e["name"] for e in pod_spec(objs)["containers"][0]["env"]]
    assert names.index("TM_REDIS_PASSWORD") < names.index("TM_REDIS_URL")  # $(VAR) expansion
    assert env["TM_REDIS_URL"]["value"] == \
        "rediss://signal:$(TM_REDIS_PASSWORD)@redis.data.svc:6379/0"
    assert "TM_REDIS_URL" not in one(objs, "ConfigMap")["data"]


def test_a_secret_in_config_is_refused(deploy_tools, sh):
    r = sh([deploy_tools.helm, "template", "x", str(CHART), "-f",
            str(ROOT / "helm" / "values" / "executor.yaml"),
            "--set", "config.TM_EXECUTOR_BYBIT_API_SECRET=hunter2"])
    assert r.returncode != 0 and "secretEnv" in r.stderr


@pytest.mark.parametrize("values", [v for v in VALUES
                                    if values_of(v)["service"].get("kind", "deployment")
                                    == "deployment"], ids=lambda p: p.stem)
def test_network_policy(deploy_tools, sh, values):
    v = values_of(values)
    name = v["service"]["name"]
    objs = docs(render(deploy_tools, sh, values))
    np = one(objs, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = np["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    prom = rule["from"][0]
    assert "namespaceSelector" in prom and "podSelector" in prom
    ports = {(p["port"], p["protocol"]) for r in np["spec"]["egress"] for p in r["ports"]}
    assert (53, "UDP") in ports
    # HTTPS egress is off until configured (CIDRs or proxy): tests/deploy/test_helm_egress.py
    assert (443, "TCP") not in ports, f"{name}: HTTPS egress without configured CIDRs"
    expected = {53, 6379, 5432} | {s["port"] for s in
                                        v.get("networkPolicy", {}).get("egress", {})
                                        .get("services", [])}
    assert {p for p, _ in ports} <= expected


def test_service_monitor_only_when_enabled(deploy_tools, sh):
    values = ROOT / "helm" / "values" / "risk.yaml"
    assert not [d for d in docs(render(deploy_tools, sh, values)) if d["kind"] == "ServiceMonitor"]
    text = render(deploy_tools, sh, values, "--set", "serviceMonitor.enabled=true")
    sm = one(docs(text), "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "http" and ep["path"] == "/metrics"
    relabel = {r["targetLabel"]: r["replacement"] for r in ep["relabelings"]}
    assert relabel == {"system": "trade-matrix", "service": "risk"}
    dep = one(docs(text), "Deployment")
    assert sm["spec"]["selector"] == dep["spec"]["selector"]
    # The rest still validates (kubernetes-validate has no schema for the CRD: a warning only).
    r = sh([*deploy_tools.kubernetes_validate, "--strict", "-k", "1.33.0", "-"], input=text)
    assert r.returncode == 0, r.stdout + r.stderr


def test_trainer_is_a_weekly_cronjob(deploy_tools, sh):
    values = ROOT / "helm" / "values" / "trainer.yaml"
    objs = docs(render(deploy_tools, sh, values))
    kinds = {d["kind"] for d in objs}
    assert "Deployment" not in kinds and "Service" not in kinds and "PodDisruptionBudget" not in kinds
    cj = one(objs, "CronJob")
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    _minute, _hour, dom, month, dow = cj["spec"]["schedule"].split()
    assert dom == "*" and month == "*" and dow not in ("*", "*/1"), "not weekly"
    spec = pod_spec(objs)
    assert spec["restartPolicy"] == "Never"
    (c,) = spec["containers"]
    assert c["image"].endswith("-trainer")
    assert c["command"] == ["python", "-m", "tm_trainer"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "livenessProbe" not in c
    np = one(objs, "NetworkPolicy")
    assert np["spec"]["ingress"] == []


def test_weekly_training_reads_the_database(deploy_tools, sh):
    """The signal trainer's CronJob trains on the data that grew (source db)."""
    (c,) = pod_spec(docs(render(deploy_tools, sh, ROOT / "helm" / "values" / "trainer.yaml")))[
        "containers"]
    args = c["args"]
    assert args[args.index("--source") + 1] == "db"
    assert "--history-dir" not in args


def test_rl_policy_has_its_own_gated_weekly_cronjob(deploy_tools, sh):
    values = ROOT / "helm" / "values" / "trainer-rl.yaml"
    objs = docs(render(deploy_tools, sh, values))
    assert {d["kind"] for d in objs} >= {"CronJob", "NetworkPolicy"}
    assert "Deployment" not in {d["kind"] for d in objs}
    cj = one(objs, "CronJob")
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    _minute, hour, dom, month, dow = cj["spec"]["schedule"].split()
    assert dom == "*" and month == "*" and dow not in ("*", "*/1"), "not weekly"
    signal = one(docs(render(deploy_tools, sh, ROOT / "helm" / "values" / "trainer.yaml")),
                 "CronJob")["spec"]["schedule"].split()
    assert (dow, int(hour)) != (signal[4], int(signal[1])), "same slot as the signal trainer"
    (c,) = pod_spec(objs)["containers"]
    assert c["image"].endswith("-trainer")
    assert c["command"] == ["python", "-m", "tm_trainer.rl"]
    # gated: promoted (and published) only when validation against Kelly passes
    assert "--promote" in c["args"] and "--publish" in c["args"]
    assert "--no-register" not in c["args"] and "--no-promote" not in c["args"]
    # it trains on the data that grew (what ingest and `tm backfill` stored), not the CSVs
    args = c["args"]
    assert args[args.index("--source") + 1] == "db"
    assert "--history-dir" not in args


def test_dashboards_and_rules_ship_with_the_chart(deploy_tools, sh):
    """Off by default; enabled, the ConfigMap and PrometheusRule carry exactly deploy/'s files."""
    import json

    values = ROOT / "helm" / "values" / "risk.yaml"
    kinds = [d["kind"] for d in docs(render(deploy_tools, sh, values))]
    assert "PrometheusRule" not in kinds and kinds.count("ConfigMap") == 1
    objs = docs(render(deploy_tools, sh, values,
                       "--set", "monitoring.grafanaDashboards.enabled=true",
                       "--set", "monitoring.prometheusRule.enabled=true"))
    cm = next(d for d in objs if d["kind"] == "ConfigMap"
              and d["metadata"]["name"] == "trade-matrix-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert sorted(cm["data"]) == [p.name for p in shipped]
    for p in shipped:
        assert json.loads(cm["data"][p.name]) == json.loads(p.read_text())
    rule = one(objs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(
        (ROOT / "deploy" / "prometheus" / "rules" / "trade-matrix.yml").read_text())


# -- deliberate arming: a real venue needs an explicit liveTrading value -----------------------
MAINNET = ("--set", "config.TM_EXECUTOR_BYBIT_REST_URL=https://api.bybit.com",
           "--set", "config.TM_EXECUTOR_BYBIT_PRIVATE_WS_URL=wss://stream.bybit.com/v5/private")
TESTNET = ("--set", "config.TM_EXECUTOR_BYBIT_REST_URL=https://api-testnet.bybit.com",
           "--set", "config.TM_EXECUTOR_BYBIT_PRIVATE_WS_URL="
           "wss://stream-testnet.bybit.com/v5/private")


def _template(tools, sh, *extra: str):
    return sh([tools.helm, "template", "executor", str(CHART), "-f",
               str(ROOT / "helm" / "values" / "executor.yaml"), *extra])


@pytest.mark.parametrize("extra, fragment", [
    (MAINNET, "points at Bybit mainnet (api.bybit.com), real money: set liveTrading: armed"),
    ((*MAINNET, "--set", "liveTrading=testnet"), "set liveTrading: armed"),
    (("--set", "config.TM_EXECUTOR_BYBIT_REST_URL=https://api.bytick.com"), "liveTrading: armed"),
    (TESTNET, "points at Bybit testnet (api-testnet.bybit.com): set liveTrading: testnet"),
    (("--set", "liveTrading=yes"), "liveTrading"),                       # the values schema
    (("--set", "config.TM_LIVE_TRADING=armed"), "set liveTrading (off, testnet or armed)"),
])
def test_a_real_venue_does_not_render_without_its_live_trading_value(deploy_tools, sh, extra,
                                                                     fragment):
    r = _template(deploy_tools, sh, *extra)
    assert r.returncode != 0 and fragment in r.stderr, r.stderr


@pytest.mark.parametrize("extra, mode", [
    ((), None), (("--set", "liveTrading=off"), "off"),
    ((*TESTNET, "--set", "liveTrading=testnet"), "testnet"),
    ((*MAINNET, "--set", "liveTrading=armed"), "armed"),
])
def test_the_live_trading_value_reaches_the_executor(deploy_tools, sh, extra, mode):
    r = _template(deploy_tools, sh, *extra)
    assert r.returncode == 0, r.stderr
    cm = one(docs(r.stdout), "ConfigMap")["data"]
    assert cm.get("TM_LIVE_TRADING") == mode
    if mode is None:                        # the default release trades on the simulator
        assert cm["TM_EXECUTOR_BYBIT_REST_URL"] == "http://exchange-sim:8108"
    v = sh([*deploy_tools.kubernetes_validate, "--strict", "-k", "1.33.0", "-"], input=r.stdout)
    assert v.returncode == 0, v.stdout + v.stderr


# -- issue 18: chart conventions ----------------------------------------------------------------
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("extra, where", [
    (("--set", "replicas=2"), "at '': additional properties 'replicas' not allowed"),
    (("--set", f"image.digets={DIGEST}"), "at '/image': additional properties 'digets'"),
    (("--set", "networkPolicy.egress.reddis.enabled=true"),
     "at '/networkPolicy/egress': additional properties 'reddis'"),
    (("--set", "monitoring.prometheusRule.lables.x=y"),
     "at '/monitoring/prometheusRule': additional properties 'lables'"),
    (("--set", "probes.readiness.pth=/x"), "at '/probes/readiness': additional properties 'pth'"),
    (("--set", "serviceMonitor.enable=true"), "at '/serviceMonitor': additional properties 'enable'"),
    (("--set", "image.digest=latest"), "at '/image/digest'"),
], ids=["top", "image", "egress", "rule-labels", "probe", "service-monitor", "bad-digest"])
def test_the_values_schema_refuses_unknown_keys(deploy_tools, sh, extra, where):
    """A typo fails the render with the path of the unknown key instead of being ignored."""
    r = sh([deploy_tools.helm, "template", "risk", str(CHART), "-f",
            str(ROOT / "helm" / "values" / "risk.yaml"), *extra])
    assert r.returncode != 0 and where in r.stderr, r.stderr


@pytest.mark.parametrize("values", ["risk", "trainer"])
def test_image_digest_is_honoured(deploy_tools, sh, values):
    path = ROOT / "helm" / "values" / f"{values}.yaml"
    (c,) = pod_spec(docs(render(deploy_tools, sh, path)))["containers"]
    tagged = "ghcr.io/trade-matrix/trade-matrix:0.1.0" + ("-trainer" if values == "trainer" else "")
    assert c["image"] == tagged
    (c,) = pod_spec(docs(render(deploy_tools, sh, path, "--set", f"image.digest={DIGEST}")))[
        "containers"]
    assert c["image"] == f"ghcr.io/trade-matrix/trade-matrix@{DIGEST}"


def test_monitoring_objects_carry_the_selector_label(deploy_tools, sh):
    """kube-prometheus-stack selects ServiceMonitors and PrometheusRules on release=<its release>:
    every monitoring object carries monitoring.selectorLabels (default release:
    kube-prometheus-stack), configurable and removable."""
    values = ROOT / "helm" / "values" / "risk.yaml"
    on = ("--set", "serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true",
          "--set", "monitoring.alertmanagerConfig.enabled=true")
    kinds = {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"}

    def labels(*extra):
        objs = docs(render(deploy_tools, sh, values, *on, *extra))
        return {d["kind"]: d["metadata"]["labels"] for d in objs if d["kind"] in kinds}
    got = labels()
    assert set(got) == kinds
    assert all(lb["release"] == "kube-prometheus-stack" for lb in got.values()), got
    got = labels("--set", "monitoring.selectorLabels.release=monitoring")
    assert all(lb["release"] == "monitoring" for lb in got.values()), got
    got = labels("--set", "monitoring.selectorLabels.release=null")   # helm: null deletes a key
    assert all("release" not in lb for lb in got.values()), got
    dep = one(docs(render(deploy_tools, sh, values)), "Deployment")
    assert "release" not in dep["metadata"]["labels"]      # only the monitoring objects


def test_alertmanager_config_routes_by_severity_to_the_channels(deploy_tools, sh):
    values = ROOT / "helm" / "values" / "risk.yaml"
    assert "AlertmanagerConfig" not in {d["kind"] for d in docs(render(deploy_tools, sh, values))}
    text = render(deploy_tools, sh, values, "--set", "monitoring.alertmanagerConfig.enabled=true",
                  "--set-json", 'monitoring.alertmanagerConfig.channels={'
                  '"hook": {"type": "webhook", "secret": "alert-webhook"},'
                  '"slack": {"type": "slack", "secret": "alert-slack", "channel": "#trading"},'
                  '"tg": {"type": "telegram", "secret": "alert-telegram", "chatID": -100123}}',
                  "--set-json", 'monitoring.alertmanagerConfig.routes={"critical": ["tg", "hook"],'
                  '"trading": ["slack"], "warning": ["slack"], "info": [], "default": ["hook"]}')
    amc = one(docs(text), "AlertmanagerConfig")
    assert amc["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    route = amc["spec"]["route"]
    assert route["receiver"] == "trade-matrix-default"
    by = {(m["name"], m["value"]): r for r in route["routes"] for m in r["matchers"]}
    assert by[("severity", "critical")]["receiver"] == "trade-matrix-critical"
    assert by[("severity", "critical")]["continue"] is True
    assert by[("category", "trading")]["receiver"] == "trade-matrix-trading"
    assert by[("severity", "warning")]["receiver"] == "trade-matrix-warning"
    assert by[("severity", "info")]["receiver"] == "trade-matrix-info"
    rcv = {r["name"]: r for r in amc["spec"]["receivers"]}
    crit = rcv["trade-matrix-critical"]
    assert crit["telegramConfigs"] == [{"botToken": {"name": "alert-telegram", "key": "bot-token"},
                                        "chatID": -100123, "sendResolved": True}]
    assert crit["webhookConfigs"][0]["urlSecret"] == {"name": "alert-webhook", "key": "url"}
    assert rcv["trade-matrix-trading"]["slackConfigs"] == [
        {"apiURL": {"name": "alert-slack", "key": "api-url"}, "channel": "#trading",
         "sendResolved": False}]
    assert set(rcv["trade-matrix-info"]) == {"name"}            # no channel: silent
    # a route naming a channel that is not defined does not render
    r = sh([deploy_tools.helm, "template", "risk", str(CHART), "-f", str(values),
            "--set", "monitoring.alertmanagerConfig.enabled=true",
            "--set-json", 'monitoring.alertmanagerConfig.routes={"critical": ["pager"]}'])
    assert r.returncode != 0 and 'names channel "pager", not defined' in r.stderr, r.stderr


def test_the_shadow_book_release(deploy_tools, sh):
    """helm/values/shadow.yaml: the shadow book as its own release, with its own Redis user and
    no signing key, trading the default candidate and giving forward (paper) evidence."""
    from tm_app.shadow.config import AUTO, SHADOW_PORT

    values = ROOT / "helm" / "values" / "shadow.yaml"
    objs = docs(render(deploy_tools, sh, values))
    (c,) = pod_spec(objs)["containers"]
    assert c["command"] == ["python", "-m", "tm_app.shadow"]
    assert c["ports"][0]["containerPort"] == SHADOW_PORT
    cm = one(objs, "ConfigMap")["data"]
    assert cm["TM_SHADOW_CANDIDATE"] == AUTO and cm["TM_MODE"] == "paper"
    assert cm["TM_HISTORY_DIR"] == "/app/data/history"
    env = {e["name"]: e for e in c["env"]}
    assert env["TM_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "trade-matrix-redis", "key": "shadow"}
    assert env["TM_REDIS_URL"]["value"].startswith("redis://shadow:$(TM_REDIS_PASSWORD)@")
    assert not [n for n in env if "SIGNING_KEY" in n]
