"""docker-compose.yml (validated by docker-compose 1.29 offline), the Dockerfile and
.dockerignore (static checks: there is no Docker engine here to build with)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from tm_app.stack.compose_secrets import COMPOSE_SERVICES, main
from tm_app.stack.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def k8s_name(name: str) -> str:
    return name.replace("_", "-")


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory) -> Path:
    """The compose secrets, as ``python -m tm_app.stack.compose_secrets`` writes them."""
    d = tmp_path_factory.mktemp("compose-secrets") / "secrets"
    assert main(["--out", str(d)]) == 0
    return d


def config(deploy_tools, secrets_dir: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TM_COMPOSE_SECRETS"}
    if secrets_dir is not None:
        env["TM_COMPOSE_SECRETS"] = str(secrets_dir)
    return subprocess.run([deploy_tools.docker_compose, "-f", str(COMPOSE), "config", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def compose(deploy_tools, secrets_dir) -> dict:
    """The compose file as docker-compose resolves it (anchors merged, defaults substituted,
    env files read)."""
    r = config(deploy_tools, secrets_dir, "-q")
    assert r.returncode == 0, r.stderr
    r = config(deploy_tools, secrets_dir)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def test_config_is_valid(compose):
    assert compose["services"]


def test_infrastructure(compose):
    svc = compose["services"]
    redis = svc["redis"]
    cmd = redis["command"] if isinstance(redis["command"], list) else redis["command"].split()
    assert cmd[cmd.index("--appendonly") + 1] == "yes", "Redis must run with AOF"
    assert "/data" in " ".join(redis["volumes"] if isinstance(redis["volumes"][0], str) else
                               [v["target"] for v in redis["volumes"]])
    assert svc["postgres"]["image"].startswith("timescale/timescaledb")
    for name in ("redis", "postgres", "prometheus", "grafana"):
        assert "healthcheck" in svc[name], name
    mounts = " ".join(str(v) for v in svc["prometheus"]["volumes"])
    assert "deploy/prometheus" in mounts
    gmounts = " ".join(str(v) for v in svc["grafana"]["volumes"])
    assert "deploy/grafana/provisioning" in gmounts and "deploy/grafana/dashboards" in gmounts
    assert svc["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_service_of_the_table(compose, service):
    name = k8s_name(service.name)
    assert name in compose["services"], f"{name} missing from docker-compose.yml"
    svc = compose["services"][name]
    assert svc["command"] == ["python", "-m", service.module]
    env = svc["environment"]
    assert env["TM_HTTP_PORT"] == str(service.port) and env["TM_HTTP_HOST"] == "0.0.0.0"
    user = COMPOSE_SERVICES[name]
    # its own Redis user (none for the simulator, which does not use Redis)
    assert env["TM_REDIS_URL"].startswith(f"redis://{user}:" if user else "redis://redis:")
    assert env["TM_DATABASE_URL"].startswith("postgresql+asyncpg://")
    test = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{service.port}/readyz" in test
    for dep in ("redis", "postgres"):
        assert svc["depends_on"][dep]["condition"] == "service_healthy"
    assert svc["user"] != "root" and svc.get("read_only") is True


def test_paper_mode_by_default(compose):
    """Everything that talks to an exchange talks to the simulator, by default."""
    svc = compose["services"]
    urls = {k: v for s in svc.values() for k, v in (s.get("environment") or {}).items()
            if re.match(r"TM_(INGEST|EXECUTOR)_(BYBIT_|DERIBIT_|REPLAY_VENUE)", k)
            and k.endswith("_URL")}
    assert urls, "no venue URL configured"
    for k, v in urls.items():
        assert re.match(r"^(http|ws)://exchange-sim:\d+", v), f"{k}={v} is not the simulator"
    for name in ("executor", "ingest"):
        assert svc[name]["depends_on"]["exchange-sim"]["condition"] == "service_healthy"


def test_dockerfile():
    text = DOCKERFILE.read_text()
    stages = {alias: base for base, alias in re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text,
                                                        re.MULTILINE | re.IGNORECASE)}
    assert {"base", "build", "build-trainer", "trainer", "runtime"} <= set(stages)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    last = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.MULTILINE | re.IGNORECASE)[-1]
    assert last == "runtime", "the default target (last stage) must be the runtime image"
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and all(not u.startswith(("root", "0")) for u in users)
    sections = re.split(r"^FROM ", text, flags=re.MULTILINE)
    body = {re.match(r"\S+\s+AS\s+(\S+)", s, re.IGNORECASE).group(1): s for s in sections[1:]}
    # Runtime: the project without the trainer extra, every version from the lock; no torch.
    assert "--require-hashes --no-deps -r requirements/runtime.txt" in body["build"]
    assert "[trainer]" not in body["build"]
    assert 'import torch' in body["build"]      # the build fails if torch slipped in
    assert "COPY --from=build /opt/venv" in body["runtime"]
    assert "requirements/trainer.txt" in body["build-trainer"] and "--require-hashes" in body["build-trainer"]
    assert "COPY --from=build-trainer /opt/venv" in body["trainer"]
    assert "torch==2.13.0+cpu" in (ROOT / "requirements" / "trainer.txt").read_text()
    assert "torch==" not in (ROOT / "requirements" / "runtime.txt").read_text()


def test_dockerignore():
    lines = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")}
    assert {".git", ".venv", "tests"} <= lines
    for needed in ("libs", "services", "trainer", "apps", "data", "pyproject.toml", "requirements"):
        assert needed not in lines, f"{needed} is needed by the Dockerfile"


# -- issue 18: a stack that starts trained, alerts that reach a person, searchable logs --------
MODEL_USERS = ("signal", "regime", "sizer", "ingest")


def test_a_one_shot_trainer_runs_before_the_services_that_need_models(compose):
    svc = compose["services"]
    trainer = svc["trainer"]
    assert trainer["image"].endswith("-trainer"), "the trainer image (Dockerfile --target trainer)"
    assert trainer["restart"] == "no"
    assert trainer["healthcheck"] == {"test": ["NONE"]}   # no HTTP port: the image's check is off
    script = " ".join(trainer["command"])
    assert "python -m tm_trainer --source files" in script
    # skipped once any signal model is registered: a restart does not train the same history again
    assert 'tm models list --kind signal --json' in script and """grep -q '"version"'""" in script
    for dep in ("redis", "postgres"):
        assert trainer["depends_on"][dep]["condition"] == "service_healthy"
    for name in MODEL_USERS:
        assert svc[name]["depends_on"]["trainer"]["condition"] == \
            "service_completed_successfully", f"{name} starts before the first models"
    assert "trainer" not in svc["exchange-sim"].get("depends_on", {})


def test_alertmanager_and_its_webhook_receiver(compose):
    svc = compose["services"]
    am = svc["alertmanager"]
    assert am["image"].startswith("prom/alertmanager:")
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    assert any("deploy/alertmanager:/etc/alertmanager" in str(v) for v in am["volumes"])
    assert am["depends_on"]["alert-webhook"]["condition"] == "service_healthy"
    hook = svc["alert-webhook"]
    assert hook["command"][:2] == ["python", "/etc/tm-alerts/webhook_log.py"]
    assert "9099" in hook["command"] and hook["user"] != "root" and hook["read_only"] is True
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for am_cfg in prom["alerting"]["alertmanagers"]
               for sc in am_cfg["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]


def test_loki_and_the_log_shipper(compose):
    svc = compose["services"]
    loki, alloy, grafana = svc["loki"], svc["alloy"], svc["grafana"]
    assert loki["image"].startswith("grafana/loki:3.")      # structured metadata: Loki 3
    assert any("deploy/loki/loki.yml:/etc/loki/loki.yml" in str(v) for v in loki["volumes"])
    assert "-config.file=/etc/loki/loki.yml" in loki["command"]
    assert "healthcheck" in loki
    assert alloy["image"].startswith("grafana/alloy:")
    mounts = " ".join(str(v) for v in alloy["volumes"])
    assert "deploy/alloy/config.alloy:/etc/alloy/config.alloy:ro" in mounts
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in mounts
    assert "/etc/alloy/config.alloy" in alloy["command"]
    assert alloy["depends_on"]["loki"]["condition"] == "service_healthy"
    assert grafana["depends_on"]["loki"]["condition"] == "service_healthy"
    # every Trade-Matrix service logs JSON to stdout (what the shipper parses)
    for s in SERVICES:
        assert svc[k8s_name(s.name)]["environment"]["TM_LOG_JSON"] == "true"


def test_compose_needs_its_generated_secrets(deploy_tools, tmp_path):
    r = config(deploy_tools, tmp_path / "none", "-q")
    assert r.returncode != 0 and "env file" in (r.stderr + r.stdout).lower()


def test_secrets_files_and_redis_with_the_acl_file(compose, secrets_dir):
    """Redis loads users.acl (hashes only), the probe health check; every .env is 0600 and holds
    only its container's secrets: its own Redis user, its signing keys, its admin token."""
    redis = compose["services"]["redis"]
    assert redis["command"][redis["command"].index("--aclfile") + 1] == "/etc/redis/users.acl"
    assert any(str(secrets_dir / "users.acl") in str(v) for v in redis["volumes"])
    assert "probe" in redis["healthcheck"]["test"]
    for f in secrets_dir.glob("*.env"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert main(["--out", str(secrets_dir)]) == 1                 # never overwritten silently
    env = {n: compose["services"][n]["environment"] for n in COMPOSE_SERVICES}
    risk_token = env["risk"]["TM_RISK_ADMIN_TOKEN"]
    assert env["ingest"]["TM_INGEST_SIM_ADMIN_TOKEN"] == env["exchange-sim"]["TM_SIM_ADMIN_TOKEN"]
    assert all(risk_token not in str(e) for n, e in env.items() if n != "risk")
    assert "TM_EXECUTOR_SIGNING_KEY_RISK_ORDER" in env["executor"]
    assert env["executor"]["TM_EXECUTOR_SIGNING_KEY_RISK_ORDER"] == \
        env["risk"]["TM_RISK_SIGNING_KEY_RISK_ORDER"]
    assert not any("SIGNING_KEY" in k for k in env["ingest"]) and \
        not any("SIGNING_KEY" in k for k in env["portfolio"])
    assert "TM_TRAINER_SIGNING_KEY_MODELS_PROMOTED" in env["trainer"]
    passwords = {n: e["TM_REDIS_URL"].split("@")[0].rsplit(":", 1)[1] for n, e in env.items()
                 if COMPOSE_SERVICES[n]}
    acl_text = (secrets_dir / "users.acl").read_text()
    assert len(set(passwords.values())) == len(passwords)
    assert not any(pw in acl_text for pw in passwords.values())


def test_the_compose_acl_file_on_a_real_redis(secrets_dir, tmp_path):
    """users.acl loaded by a real redis-server 7; each container's URL from its env file: it
    may publish what it publishes, and not the forged order or breaker command."""
    import redis as redis_py
    from tm_common.bus.acl import ACCESS
    from tm_common.testing.redis import RedisServer

    server = RedisServer(tmp_path, config=[f"aclfile {secrets_dir / 'users.acl'}"]).start()
    try:
        for service, user in COMPOSE_SERVICES.items():
            if not user:
                continue
            line = next(x for x in (secrets_dir / f"{service}.env").read_text().splitlines()
                        if x.startswith("TM_REDIS_URL="))
            url = line.split("=", 1)[1].replace("@redis:6379", f"@127.0.0.1:{server.port}")
            r = redis_py.Redis.from_url(url)
            for s in ACCESS[user].publishes:
                r.xadd(f"tm:{s}", {"a": "1"})
            for forged in ("risk.order", "risk.command"):
                if forged not in ACCESS[user].publishes:
                    with pytest.raises(redis_py.exceptions.NoPermissionError):
                        r.xadd(f"tm:{forged}", {"a": "1"})
            r.close()
        with pytest.raises(redis_py.AuthenticationError):
            redis_py.Redis.from_url(server.url).xadd("tm:risk.order", {"a": "1"})
    finally:
        server.stop()


def test_a_shadow_book_runs_beside_production(compose, secrets_dir):
    """The challenger's shadow book (tm_app.shadow) is part of the stack: its own Redis user
    (reads production's market streams, owns shadow:*), no signing key (it publishes nothing
    production reads), started once the trainer registered the candidates, scraped."""
    svc = compose["services"]["shadow"]
    assert svc["command"] == ["python", "-m", "tm_app.shadow"]
    env = svc["environment"]
    assert env["TM_HTTP_PORT"] == "8109" and env["TM_SHADOW_CANDIDATE"] == "auto"
    assert env["TM_MODE"] == "replay"          # the compose default replays: shown, not counted
    assert env["TM_REDIS_URL"].startswith("redis://shadow:")
    assert not any("SIGNING_KEY" in k or "ADMIN_TOKEN" in k for k in env)
    assert "127.0.0.1:8109/readyz" in " ".join(svc["healthcheck"]["test"])
    assert svc["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    assert svc["user"] != "root" and svc.get("read_only") is True
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    statics = [sc for job in prom["scrape_configs"] for sc in job.get("static_configs", [])]
    assert any("shadow:8109" in sc["targets"] and sc["labels"]["service"] == "shadow"
               for sc in statics)
