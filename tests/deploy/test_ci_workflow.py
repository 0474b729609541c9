"""The pipeline that builds the images (.github/workflows/ci.yml), checked offline: the GitHub
workflow schema (check-jsonschema's vendored copy), then what it promises: .ci/run, the runtime
and trainer images built from the Dockerfile's stages, a scan that can fail the build before
anything is pushed, pushes on release tags only, and the names the Helm chart runs by default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
TAG = "startsWith(github.ref, 'refs/tags/v')"


def load() -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))       # YAML 1.1 reads the key `on` as true
    return doc


def step(job: dict, uses: str, nth: int = 0) -> dict:
    found = [s for s in job["steps"] if s.get("uses", "").startswith(uses)]
    assert len(found) > nth, f"no step uses {uses}"
    return found[nth]


def test_the_workflow_passes_the_github_schema(deploy_tools, sh):
    r = sh([*deploy_tools.check_jsonschema, "--builtin-schema", "vendor.github-workflows",
            str(WORKFLOW)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_schema_check_catches_a_broken_workflow(deploy_tools, sh, tmp_path):
    broken = WORKFLOW.read_text().replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1)
    (tmp_path / "ci.yml").write_text(broken)
    r = sh([*deploy_tools.check_jsonschema, "--builtin-schema", "vendor.github-workflows",
            str(tmp_path / "ci.yml")])
    assert r.returncode == 1, r.stdout + r.stderr


def test_tests_run_ci_run():
    doc = load()
    assert {"push", "pull_request"} <= set(doc["on"]) and doc["on"]["push"]["tags"] == ["v*.*.*"]
    job = doc["jobs"]["test"]
    assert any(s.get("run", "").strip() == ".ci/run" for s in job["steps"])
    assert {"redis", "postgres"} <= set(job["services"])
    assert job["services"]["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert doc["permissions"] == {"contents": "read"}


def test_images_are_built_scanned_then_pushed_on_tags_only():
    job = load()["jobs"]["images"]
    assert job["needs"] == "test"
    targets = {m["target"]: m["suffix"] for m in job["strategy"]["matrix"]["include"]}
    assert targets == {"runtime": "", "trainer": "-trainer"}
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "deploy" / "docker" / "Dockerfile")
                        .read_text(), re.MULTILINE | re.IGNORECASE)
    assert set(targets) <= set(stages)
    build = step(job, "docker/build-push-action", 0)
    assert build["with"]["file"] == "deploy/docker/Dockerfile"
    assert build["with"]["target"] == "${{ matrix.target }}"
    assert build["with"]["push"] is False and build["with"]["load"] is True
    names = [s.get("uses", s.get("run", "")) for s in job["steps"]]
    scan = step(job, "aquasecurity/trivy-action")
    assert scan["with"]["exit-code"] == "1" and "CRITICAL" in scan["with"]["severity"]
    push = step(job, "docker/build-push-action", 1)
    assert push["with"]["push"] is True and push["if"] == TAG
    assert names.index(scan["uses"]) < names.index(push["uses"], names.index(scan["uses"]))
    assert step(job, "docker/login-action")["if"] == TAG
    assert job["permissions"]["packages"] == "write"
    check = next(s for s in job["steps"] if "appVersion" in s.get("name", ""))
    assert check["if"] == TAG and "helm/trade-matrix/Chart.yaml" in check["run"]


def test_the_chart_runs_what_the_pipeline_publishes():
    """On tag v<appVersion>: <IMAGE>:<appVersion> and <IMAGE>:<appVersion>-trainer, which are the
    chart's default image and its trainer variant."""
    doc = load()
    values = yaml.safe_load((ROOT / "helm" / "trade-matrix" / "values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "helm" / "trade-matrix" / "Chart.yaml").read_text())
    assert doc["env"]["IMAGE"] == values["image"]["repository"]
    assert values["image"]["tag"] == ""                    # = appVersion
    meta = step(doc["jobs"]["images"], "docker/metadata-action")["with"]
    assert meta["images"] == "${{ env.IMAGE }}"
    assert "type=semver,pattern={{version}}" in meta["tags"].splitlines()   # v1.2.3 -> 1.2.3
    assert "suffix=${{ matrix.suffix }}" in meta["flavor"]
    for name in ("trainer", "trainer-rl"):
        variant = yaml.safe_load((ROOT / "helm" / "values" / f"{name}.yaml").read_text())[
            "image"]["variant"]
        suffixes = {m["suffix"] for m in doc["jobs"]["images"]["strategy"]["matrix"]["include"]}
        assert f"-{variant}" in suffixes, name
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(chart["appVersion"]))


@pytest.mark.parametrize("uses", ["actions/checkout", "actions/setup-python",
                                  "docker/build-push-action", "aquasecurity/trivy-action"])
def test_actions_are_pinned_to_a_version(uses):
    refs = re.findall(rf"uses:\s*{re.escape(uses)}@(\S+)", WORKFLOW.read_text())
    assert refs and all(r not in ("main", "master", "latest") for r in refs), refs
