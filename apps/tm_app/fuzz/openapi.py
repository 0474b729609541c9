"""schemathesis against every service's OpenAPI, for ``tm_app.fuzz.streams`` and the tests.

The services built on ``tm_common.service.create_app`` do not serve ``/openapi.json``
(``openapi_url=None``), so the schema of each is generated from the very app the service runs:
``python tm_app.fuzz.openapi --dump-all ENVS OUT`` builds each app in a helper process, with
the service's own environment, and writes ``app.openapi()`` (the lifespan does not start:
nothing connects). The exchange sim serves its schema; it is read from the running process.

Checks: ``not_a_server_error`` (no 5xx) on every operation, with the admin token (so that the
admin and sim-control routes are fuzzed beyond the 401). ``/readyz`` is left out of the
schemathesis run because its 503 means "not ready" by design (no model is trained here); it is
probed separately with odd requests and must answer 200 or 503 with its JSON body. The sim's
``POST /sim/faults`` makes the sim fail on purpose (5xx, timeouts), so it runs in a pass of its
own, last, and the sim's faults are switched off again afterwards.

schemathesis sends valid JSON; :func:`probe_hostile` then sends what it does not (nesting
100,000 deep, invalid UTF-8, ``NaN`` tokens, a 5000-digit integer, 2 MiB strings, a 60 kB query
or header) to every operation: no 5xx either.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# service → (module, factory): the factory builds the FastAPI app the service runs.
APPS = {
    "exchange_sim": ("tm_exchange_sim.app", "create_app"),
    "risk": ("tm_risk.app", "build_app"),
}
SETTINGS = {"ingest": "IngestSettings", "regime": "RegimeSettings", "signal": "SignalSettings",
            "sizer": "SizerSettings", "executor": "ExecutorSettings",
            "portfolio": "PortfolioSettings"}
SKIP_PATHS = ("/readyz",)
FAULTS_OP = "POST /sim/faults"
QUIET_FAULTS = {"rate_limit_prob": 0.0, "http_5xx_prob": 0.0, "timeout_prob": 0.0,
                "latency_ms": 0.0, "ws_drop_prob": 0.0}


def build_app(service: str):
    """The service's FastAPI app, from the ``TM_*`` environment (no lifespan started)."""
    if service in APPS:
        mod, fn = APPS[service]
        return getattr(importlib.import_module(mod), fn)()
    from tm_common.service import create_app

    pkg = f"tm_{service}"
    settings = getattr(importlib.import_module(f"{pkg}.config"), SETTINGS[service])()
    return create_app(importlib.import_module(f"{pkg}.app").build_runtime(settings))


def schemas_for(ports: dict[str, int], envs: dict[str, dict[str, str]],
                timeout_s: float = 300) -> dict[str, dict]:
    """The OpenAPI document of every service: served by it (the sim), or generated from its
    app, all in one helper process (``--dump-all``) with each service's own environment."""
    out: dict[str, dict] = {}
    for name, port in ports.items():
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10)
            if r.status_code == 200 and isinstance(r.json(), dict) and r.json().get("paths"):
                out[name] = r.json()
        except (httpx.HTTPError, ValueError):
            pass
    todo = {n: envs.get(n, {}) for n in ports if n not in out}
    if todo:
        with tempfile.TemporaryDirectory(prefix="tm-openapi-") as d:
            src, dst = Path(d) / "envs.json", Path(d) / "schemas.json"
            src.write_text(json.dumps(todo))
            env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
            p = subprocess.run([sys.executable, "-m", "tm_app.fuzz.openapi", "--dump-all", str(src), str(dst)],
                               env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
            if p.returncode != 0:
                raise RuntimeError(f"cannot build the OpenAPI schemas:\n{p.stderr[-3000:]}")
            out.update(json.loads(dst.read_text()))
    return {n: complete(n, out[n]) for n in ports}


def dump_all(src: Path, dst: Path) -> None:
    """``--dump-all``: build each service's app with its environment, write every schema."""
    base = dict(os.environ)
    docs = {}
    for name, env in json.loads(src.read_text()).items():
        os.environ.clear()
        os.environ.update({**base, **env, "TM_LOG_LEVEL": "ERROR"})
        docs[name] = build_app(name).openapi()
    os.environ.clear()
    os.environ.update(base)
    dst.write_text(json.dumps(docs))


BASE_PATHS = ("/healthz", "/metrics", "/status")


def complete(service: str, doc: dict) -> dict:
    """Add what the schema leaves out: the base routes where they are hidden from it (the sim
    serves them with ``include_in_schema=False``), and the breaker routes' optional JSON body
    (``{"reason": str}``, read by hand) so that schemathesis fuzzes it too."""
    paths = doc.setdefault("paths", {})
    for path in BASE_PATHS:
        if "get" not in paths.get(path, {}):
            paths.setdefault(path, {})["get"] = {
                "operationId": f"base{path.replace('/', '_')}",
                "responses": {"200": {"description": "OK"}}}
    if service == "risk":
        body = {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"reason": {"type": "string", "maxLength": 200}}}}}}
        for path in ("/breaker/trip", "/breaker/kill", "/breaker/reset"):
            op = doc.get("paths", {}).get(path, {}).get("post")
            if op is not None and "requestBody" not in op:
                op["requestBody"] = body
    return doc


@dataclass
class StResult:
    """One schemathesis run against one service."""

    service: str
    operations: int = 0
    cases: int = 0
    failures: int = 0
    errors: int = 0
    secs: float = 0.0
    exit_code: int = 0
    details: list[str] = field(default_factory=list)
    probe_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.exit_code == 0 and self.failures == 0 and self.errors == 0
                and not self.probe_problems)


def run_schemathesis(service: str, port: int, schema: dict, *, out_dir: Path, max_examples: int,
                     seed: int, admin_token: str | None, include: str | None = None,
                     exclude: tuple[str, ...] = (), max_time_s: float | None = None,
                     timeout_s: float = 1800) -> StResult:
    """``schemathesis run`` (the CLI, in a subprocess) with the ``not_a_server_error`` check."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = service + ("-" + include.replace(" ", "_").replace("/", "_") if include else "")
    path = out_dir / f"{tag}.openapi.json"
    path.write_text(json.dumps(schema))
    report = out_dir / f"{tag}.report.json"
    report.unlink(missing_ok=True)
    st = Path(sys.executable).parent / "schemathesis"
    cmd = [str(st), "run", str(path), "--url", f"http://127.0.0.1:{port}",
           "--checks", "not_a_server_error", "--max-examples", str(max_examples),
           "--seed", str(seed), "--workers", "1", "--request-timeout", "30",
           "--generation-database", "none", "--no-color", "--report", "json",
           "--report-json-path", str(report), "--suppress-health-check", "all",
           "--warnings", "off"]
    if max_time_s:
        cmd += ["--max-time", str(int(max_time_s))]
    if admin_token:
        cmd += ["-H", f"Authorization: Bearer {admin_token}"]
    if include:
        cmd += ["--include-name", include]
    for name in exclude:
        cmd += ["--exclude-name", name]
    for skip in SKIP_PATHS:
        cmd += ["--exclude-path", skip]
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=out_dir, capture_output=True, text=True, timeout=timeout_s,
                       check=False)
    res = StResult(service if not include else f"{service} [{include}]",
                   secs=time.monotonic() - t0, exit_code=p.returncode)
    (out_dir / f"{tag}.log").write_text(p.stdout + p.stderr)
    if report.exists():
        doc = json.loads(report.read_text())
        res.operations = doc["operations"]["tested"]
        res.cases = doc["test_cases"]["generated"]
        res.failures = doc["test_cases"]["unique_failures"]
        res.errors = doc["test_cases"]["errored"] + len(doc.get("errors") or [])
        res.details = [_describe(f) for f in doc.get("failures") or []] + \
                      [_describe(e) for e in doc.get("errors") or []]
    if not res.ok and not res.details:
        res.details = [p.stdout[-3000:] + p.stderr[-2000:]]
    return res


def _describe(item: Any) -> str:
    return json.dumps(item)[:1500]


def probe_readyz(port: int) -> list[str]:
    """Odd requests to ``/readyz``: each must answer 200 or 503 with ``{"ready": ...}``."""
    problems = []
    url = f"http://127.0.0.1:{port}/readyz"
    odd: list[dict[str, Any]] = [{}, {"params": {"x": "\x00" * 3, "ready": "[]"}},
                                 {"headers": {"Accept": "text/html", "X-Forwarded-For": "::1" * 50}},
                                 {"params": {"a" * 2000: "b" * 2000}}]
    for kw in odd:
        try:
            r = httpx.get(url, timeout=10, **kw)
            if r.status_code not in (200, 503) or "ready" not in r.json():
                problems.append(f"/readyz {kw}: HTTP {r.status_code} {r.text[:200]}")
        except (httpx.HTTPError, ValueError) as e:
            problems.append(f"/readyz {kw}: {type(e).__name__}: {e}")
    return problems


# Bodies schemathesis does not send (it generates valid JSON): each must get a 4xx, not a 5xx.
HOSTILE_BODIES = {
    "deep_array": b"[" * 100_000 + b"]" * 100_000,
    "deep_object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "invalid_utf8": b'{"reason": "\xff\xfe"}',
    "nan_token": b'{"steps": NaN, "reason": NaN, "start_ms": Infinity}',
    "huge_int": b'{"steps": ' + b"9" * 5000 + b"}",
    "two_mib_string": b'{"reason": "' + b"a" * (2 << 20) + b'"}',
    "not_json": b"<html>hello</html>",
    "empty": b"",
}


def probe_hostile(port: int, schema: dict, admin_token: str | None) -> list[str]:
    """Every POST/PUT/PATCH operation of ``schema`` with each of :data:`HOSTILE_BODIES` (JSON
    content type, the admin token), and every GET with an oversized query and header: any 5xx,
    or a dropped connection after which ``/healthz`` fails, is a problem
    ("METHOD path body: HTTP status")."""
    headers = {"Content-Type": "application/json"}
    if admin_token:
        headers["Authorization"] = f"Bearer {admin_token}"
    problems = []
    for path, ops in sorted(schema.get("paths", {}).items()):
        if "{" in path or path in SKIP_PATHS:
            continue
        for method in sorted(ops):
            tries: list[tuple[str, dict]] = []
            if method in ("post", "put", "patch"):
                tries = [(name, {"content": body}) for name, body in HOSTILE_BODIES.items()]
            elif method == "get":
                tries = [("long_query", {"params": {"q": "x" * 60_000}}),
                         ("long_header", {"headers": {"X-Fuzz": "y" * 60_000}})]
            for name, kw in tries:
                # A fresh connection each: after a 500, uvicorn closes the one it answered on.
                try:
                    r = httpx.request(method.upper(), f"http://127.0.0.1:{port}{path}",
                                      headers={**headers, **kw.pop("headers", {})}, timeout=60,
                                      **kw)
                    if r.status_code >= 500:
                        problems.append(f"{method.upper()} {path} {name}: HTTP "
                                        f"{r.status_code} {r.text[:80]!r}")
                except httpx.HTTPError as e:
                    # A server may refuse an oversized request by closing the connection while
                    # the client still writes (uvicorn: a 16 kB header limit): fine if it lives.
                    if not _alive(port):
                        problems.append(f"{method.upper()} {path} {name}: {type(e).__name__}, "
                                        "and /healthz no longer answers")
    return problems


def _alive(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def quiet_sim_faults(port: int, admin_token: str | None) -> None:
    """Switch the sim's fault injection off (after ``POST /sim/faults`` was fuzzed)."""
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    r = httpx.post(f"http://127.0.0.1:{port}/sim/faults", json=QUIET_FAULTS, headers=headers,
                   timeout=30)
    r.raise_for_status()


def fuzz_services(ports: dict[str, int], envs: dict[str, dict[str, str]], *, out_dir: Path,
                  max_examples: int, seed: int, admin_token: str | None,
                  max_time_s: float | None = None, hostile: bool = True,
                  log=print) -> list[StResult]:
    """schemathesis on every service in ``ports`` (the sim's fault route last, on its own),
    then the ``/readyz`` probe and (``hostile``) :func:`probe_hostile` on each."""
    schemas = schemas_for(ports, envs)
    runs: list[tuple[str, str | None, tuple[str, ...]]] = [
        (name, None, (FAULTS_OP,) if name == "exchange_sim" else ()) for name in ports]
    if "exchange_sim" in ports:
        runs.append(("exchange_sim", FAULTS_OP, ()))
    results = []
    for name, include, exclude in runs:
        res = run_schemathesis(name, ports[name], schemas[name], out_dir=out_dir,
                               max_examples=max_examples, seed=seed, admin_token=admin_token,
                               include=include, exclude=exclude, max_time_s=max_time_s)
        if include == FAULTS_OP:
            quiet_sim_faults(ports[name], admin_token)
        else:
            res.probe_problems = probe_readyz(ports[name])
            if hostile:
                res.probe_problems += probe_hostile(ports[name], schemas[name], admin_token)
                if name == "exchange_sim":
                    quiet_sim_faults(ports[name], admin_token)
        results.append(res)
        log(f"schemathesis {res.service}: {res.operations} operations, {res.cases} cases, "
            f"{res.failures} failures, {res.errors} errors, {res.secs:.1f}s"
            + (f"; probes: {res.probe_problems}" if res.probe_problems else ""))
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--dump-all":
        dump_all(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        raise SystemExit("usage: fuzz_openapi.py --dump-all ENVS.json OUT.json")
