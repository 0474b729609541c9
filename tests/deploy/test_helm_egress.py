"""Narrowed egress (issue 19, part 6): every NetworkPolicy egress rule names its destination.

Redis and PostgreSQL by pod selector (and namespace selector) or CIDR from values; HTTPS for the
executor and ingest only to configured CIDRs, or through an egress proxy (HTTPS_PROXY) reached on
its port only; an optional namespace default-deny; DNS kept for every pod."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "trade-matrix"
VALUES = sorted((ROOT / "helm" / "values").glob("*.yaml"))
DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
KUBE_DNS = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}


def template(tools, sh, values: str, *extra: str):
    return sh([tools.helm, "template", values, str(CHART), "-f",
               str(ROOT / "helm" / "values" / f"{values}.yaml"), "--namespace", "trading", *extra])


def policies(tools, sh, values: str, *extra: str) -> dict[str, dict]:
    r = template(tools, sh, values, *extra)
    assert r.returncode == 0, r.stderr
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(r.stdout)
            if d and d["kind"] == "NetworkPolicy"}


def rule_on(policy: dict, port: int) -> dict:
    found = [r for r in policy["spec"]["egress"] if {"port": port, "protocol": "TCP"} in r["ports"]]
    assert len(found) == 1, f"expected one egress rule on {port}: {policy['spec']['egress']}"
    return found[0]


def ports_of(policy: dict) -> set[int]:
    return {p["port"] for r in policy["spec"]["egress"] for p in r["ports"]}


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_no_rule_of_a_shipped_values_file_allows_any_address(deploy_tools, sh, values):
    (np,) = policies(deploy_tools, sh, values.stem).values()
    egress = np["spec"]["egress"]
    assert egress[0] == {"to": [KUBE_DNS], "ports": DNS_PORTS}, "DNS egress must be kept"
    for rule in egress:
        assert rule.get("to"), f"{values.stem}: an egress rule without `to` allows any address"
        cidrs = [p["ipBlock"]["cidr"] for p in rule["to"] if "ipBlock" in p]
        assert "0.0.0.0/0" not in cidrs and "::/0" not in cidrs, rule
    assert 443 not in ports_of(np), f"{values.stem}: HTTPS egress is off until configured"


def test_redis_and_the_database_by_pod_selector_by_default(deploy_tools, sh):
    np = policies(deploy_tools, sh, "risk")["risk"]
    assert rule_on(np, 6379)["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}]
    assert rule_on(np, 5432)["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgresql"}}}]


def test_redis_in_another_namespace_and_the_database_by_cidr(deploy_tools, sh):
    np = policies(deploy_tools, sh, "risk",
                  "--set", "networkPolicy.egress.redis.namespaceSelector.matchLabels.team=data",
                  "--set", "networkPolicy.egress.database.podSelector=null",
                  "--set", "networkPolicy.egress.database.cidrs={10.20.0.5/32,10.20.0.6/32}",
                  "--set", "networkPolicy.egress.database.port=6432")["risk"]
    assert rule_on(np, 6379)["to"] == [   # one peer: the selectors are ANDed
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}},
         "namespaceSelector": {"matchLabels": {"team": "data"}}}]
    assert rule_on(np, 6432)["to"] == [{"ipBlock": {"cidr": "10.20.0.5/32"}},
                                       {"ipBlock": {"cidr": "10.20.0.6/32"}}]
    assert 5432 not in ports_of(np)


@pytest.mark.parametrize("what", ["redis", "database", "proxy"])
def test_a_destination_without_selector_or_cidr_is_refused(deploy_tools, sh, what):
    extra = ("--set", "networkPolicy.egress.proxy.enabled=true",
             "--set", "networkPolicy.egress.proxy.url=http://egress-proxy:3128") \
        if what == "proxy" else ("--set", f"networkPolicy.egress.{what}.podSelector=null")
    r = template(deploy_tools, sh, "executor", *extra)
    assert r.returncode != 0
    assert (f"networkPolicy.egress.{what}: name the destination with podSelector "
            "(and namespaceSelector) or cidrs") in r.stderr, r.stderr


@pytest.mark.parametrize("values", ["executor", "ingest"])
def test_https_only_to_the_configured_cidrs(deploy_tools, sh, values):
    np = policies(deploy_tools, sh, values, "--set", "networkPolicy.egress.https.enabled=true",
                  "--set", "networkPolicy.egress.https.bybitCIDRs={203.0.113.0/24,198.51.100.7/32}",
                  "--set", "networkPolicy.egress.https.deribitCIDRs={203.0.113.0/24,192.0.2.0/28}"
                  )[values]
    assert rule_on(np, 443)["to"] == [{"ipBlock": {"cidr": c}} for c in
                                      ("203.0.113.0/24", "198.51.100.7/32", "192.0.2.0/28")]


def test_https_without_cidrs_is_refused_unless_any_public_address_is_explicit(deploy_tools, sh):
    r = template(deploy_tools, sh, "executor", "--set", "networkPolicy.egress.https.enabled=true")
    assert r.returncode != 0 and "networkPolicy.egress.https.enabled: name the exchange's " \
        "addresses in networkPolicy.egress.https.bybitCIDRs / deribitCIDRs" in r.stderr, r.stderr
    np = policies(deploy_tools, sh, "executor", "--set", "networkPolicy.egress.https.enabled=true",
                  "--set", "networkPolicy.egress.https.anyPublicAddress=true")["executor"]
    assert rule_on(np, 443)["to"] == [{"ipBlock": {
        "cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}]


PROXY = ("--set", "networkPolicy.egress.proxy.enabled=true",
         "--set", "networkPolicy.egress.proxy.url=http://egress-proxy.egress:3128",
         "--set", "networkPolicy.egress.proxy.podSelector.matchLabels.app=egress-proxy",
         "--set", "networkPolicy.egress.proxy.namespaceSelector.matchLabels.name=egress")


def test_the_egress_proxy_is_env_wiring_and_one_rule_to_its_port(deploy_tools, sh):
    r = template(deploy_tools, sh, "ingest", *PROXY)
    assert r.returncode == 0, r.stderr
    objs = [d for d in yaml.safe_load_all(r.stdout) if d]
    cm = next(d for d in objs if d["kind"] == "ConfigMap")["data"]
    assert cm["HTTPS_PROXY"] == cm["HTTP_PROXY"] == "http://egress-proxy.egress:3128"
    assert "exchange-sim" in cm["NO_PROXY"].split(",") and ".svc" in cm["NO_PROXY"].split(",")
    np = next(d for d in objs if d["kind"] == "NetworkPolicy")
    assert rule_on(np, 3128)["to"] == [{"podSelector": {"matchLabels": {"app": "egress-proxy"}},
                                        "namespaceSelector": {"matchLabels": {"name": "egress"}}}]
    assert 443 not in ports_of(np)
    plain = template(deploy_tools, sh, "ingest")
    assert "HTTPS_PROXY" not in plain.stdout and 3128 not in ports_of(
        policies(deploy_tools, sh, "ingest")["ingest"])


def test_a_proxy_without_url_is_refused(deploy_tools, sh):
    r = template(deploy_tools, sh, "executor", "--set", "networkPolicy.egress.proxy.enabled=true",
                 "--set", "networkPolicy.egress.proxy.cidrs={10.0.9.9/32}")
    assert r.returncode != 0 and "set networkPolicy.egress.proxy.url" in r.stderr, r.stderr


def test_the_namespace_default_deny_only_when_enabled(deploy_tools, sh):
    assert set(policies(deploy_tools, sh, "risk")) == {"risk"}
    nps = policies(deploy_tools, sh, "risk", "--set", "networkPolicy.defaultDeny.enabled=true")
    assert set(nps) == {"risk", "trade-matrix-default-deny"}
    deny = nps["trade-matrix-default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [],
                    "egress": [{"to": [KUBE_DNS], "ports": DNS_PORTS}]}


def test_every_variant_passes_kubernetes_validate(deploy_tools, sh, tmp_path):
    variants = {
        "deny-cidr": ("risk", "--set", "networkPolicy.defaultDeny.enabled=true",
                      "--set", "networkPolicy.egress.database.cidrs={10.20.0.5/32}"),
        "https": ("executor", "--set", "networkPolicy.egress.https.enabled=true",
                  "--set", "networkPolicy.egress.https.bybitCIDRs={203.0.113.0/24}"),
        "proxy": ("ingest", *PROXY),
    }
    for name, (values, *extra) in variants.items():
        r = template(deploy_tools, sh, values, *extra)
        assert r.returncode == 0, r.stderr
        (tmp_path / f"{name}.yaml").write_text(r.stdout)
    v = sh([*deploy_tools.kubernetes_validate, "--strict", "-k", "1.33.0",
            *(f"{n}.yaml" for n in variants)], cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stdout.count("passed for resource networkpolicy/") == 4, v.stdout


@pytest.mark.parametrize("extra, where", [
    (("--set", "networkPolicy.egress.https.bybitCIDR={1.2.3.4/32}"),
     "additional properties 'bybitCIDR'"),
    (("--set", "networkPolicy.egress.redis.cidrs={redis.example.com}"),
     "/networkPolicy/egress/redis/cidrs/0"),
    (("--set", "networkPolicy.defaultDeny.enable=true"), "additional properties 'enable'"),
    (("--set", "networkPolicy.egress.redis.to={}"), "additional properties 'to'"),
], ids=["https-typo", "cidr-not-a-cidr", "deny-typo", "old-to"])
def test_the_schema_refuses_bad_egress_values(deploy_tools, sh, extra, where):
    r = template(deploy_tools, sh, "risk", *extra)
    assert r.returncode != 0 and where in r.stderr, r.stderr
