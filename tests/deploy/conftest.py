"""Deploy tests: the validators (installed by tools/install_deploy_tools.sh), paths, helpers.

The tools are installed once per session. A test that needs them is skipped, with the installer's
own words, only when the installation is impossible (no network for the wheel, no apt-get).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "tools" / "install_deploy_tools.sh"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"tm_deploy_tests_{name}",
                                                  Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@dataclass(frozen=True)
class Tools:
    helm: str
    kubectl: str
    kubernetes_validate: list[str]
    promtool: str
    prometheus: str
    docker_compose: str
    alertmanager: str
    amtool: str
    check_jsonschema: list[str]


@pytest.fixture(scope="session")
def deploy_tools() -> Tools:
    """Run the installer (idempotent: ~1 s when everything is there) and locate the tools."""
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(INSTALLER)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600, check=False)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        pytest.skip(f"deploy tools cannot be installed here ({INSTALLER.name} exit "
                    f"{r.returncode}):\n{tail}")
    kv = Path(sys.executable).with_name("kubernetes-validate")
    tools = Tools(helm=str(ROOT / "tools" / "bin" / "helm"),
                  kubectl=str(ROOT / "tools" / "bin" / "kubectl"),
                  kubernetes_validate=[str(kv)] if kv.exists() else
                  [sys.executable, "-c", ("import sys; from kubernetes_validate.__main__ import "
                   "main; sys.exit(main())")],
                  promtool=shutil.which("promtool") or "promtool",
                  prometheus=shutil.which("prometheus") or "prometheus",
                  docker_compose=shutil.which("docker-compose") or "docker-compose",
                  alertmanager=shutil.which("prometheus-alertmanager") or "alertmanager",
                  amtool=shutil.which("amtool") or "amtool",
                  check_jsonschema=[sys.executable, "-m", "check_jsonschema"])
    return tools


@pytest.fixture(scope="session")
def promql():
    """The PromQL helper module (tests/deploy/promql.py)."""
    return _load("promql")


def run(argv: list[str], *, cwd: Path = ROOT, input: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a tool; the result carries stdout/stderr for assertion messages."""
    return subprocess.run(argv, cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="session")
def sh():
    return run
