"""Every service of the local stack as a real process, for the fuzzers.

The same supervisor as ``tm up`` and ``tm_app.mesh`` (each service ``python -m <module>`` in its
own process group, restarted if it dies), under a private stream namespace and a port offset, with
the environment ``tm_app.mesh._specs`` gives a replay run (copied here, not imported: that
function is private), except that ingest runs with ``TM_MODE=off`` (endpoints only: it publishes
nothing, so every entry on the streams is the fuzzer's) and every service has an admin token.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tm_app.stack.services import SERVICES
from tm_app.stack.supervisor import ProcessSpec, Supervisor

SIM_KEY, SIM_SECRET = "fuzz-key", "fuzz-secret-not-for-production"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
# Readiness checks that may fail here by design: no model is trained (those services run flat).
EXPECTED_NOT_READY = {"model", "policy"}


def specs(*, redis_url: str, database_url: str, namespace: str, data_dir: Path,
          port_offset: int, admin_token: str, symbols=SYMBOLS) -> list[ProcessSpec]:
    """One :class:`ProcessSpec` per service of :data:`SERVICES` (sim first)."""
    port = {s.name: s.port + port_offset for s in SERVICES}
    sim = f"http://127.0.0.1:{port['exchange_sim']}"
    common = {"TM_REDIS_URL": redis_url, "TM_DATABASE_URL": database_url,
              "TM_NAMESPACE": namespace, "TM_DATA_DIR": str(data_dir), "TM_LOG_LEVEL": "WARNING",
              "TM_SYMBOLS": ",".join(symbols), "TM_MODE": "replay", "TM_RECLAIM_IDLE_MS": "5000",
              "TM_ADMIN_TOKEN": admin_token}
    per = {
        "exchange_sim": {"TM_SIM_SEED": "42", "TM_SIM_API_KEY": SIM_KEY,
                         "TM_SIM_API_SECRET": SIM_SECRET, "TM_SIM_RATE_LIMIT_PER_S": "100000",
                         "TM_SIM_SYMBOLS": "[" + ",".join(f'"{s}"' for s in symbols) + "]"},
        "ingest": {"TM_MODE": "off"},
        "risk": {"TM_RISK_STALE_CHECK_INTERVAL_S": "0", "TM_RISK_VENUE_REST_URL": sim},
        "executor": {"TM_EXECUTOR_BYBIT_REST_URL": sim,
                     "TM_EXECUTOR_BYBIT_PRIVATE_WS_URL": sim.replace("http", "ws") + "/v5/private",
                     "TM_EXECUTOR_BYBIT_API_KEY": SIM_KEY, "TM_EXECUTOR_BYBIT_API_SECRET": SIM_SECRET,
                     "TM_EXECUTOR_RECONCILE_INTERVAL_S": "100000", "TM_EXECUTOR_ORDER_HISTORY_FALLBACK": "false"},
    }
    return [ProcessSpec(name=s.name, argv=[sys.executable, "-m", s.module], port=port[s.name],
                        env={**common, "TM_SERVICE_NAME": s.name, "TM_HTTP_PORT": str(port[s.name]),
                             **per.get(s.name, {})})
            for s in SERVICES]


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict | str]:
    """(status, JSON or text) of ``GET http://127.0.0.1:<port><path>``; (0, error) if no answer."""
    try:
        r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=timeout)
    except httpx.HTTPError as e:
        return 0, f"{type(e).__name__}: {e}"
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


_RESTARTS = re.compile(r'^tm_task_restarts_total\{[^}]*\}\s+([0-9.e+]+)', re.MULTILINE)


@dataclass
class Mesh:
    """A running stack. ``namespace``: its stream prefix; ``ports``: service → HTTP port."""

    sup: Supervisor
    namespace: str
    data_dir: Path
    admin_token: str
    ports: dict[str, int] = field(default_factory=dict)

    def poll(self) -> None:
        self.sup.poll()

    def restarts(self) -> dict[str, int]:
        """Per service: supervisor restarts, plus 1 if the process is not running now."""
        self.sup.poll()
        return {n: p.restarts + (0 if p.running else 1) for n, p in self.sup.procs.items()}

    def task_restarts(self) -> dict[str, float]:
        """Per service: crashed-and-restarted tasks inside the process (``tm_task_restarts_total``)."""
        out = {}
        for n, port in self.ports.items():
            code, text = get(port, "/metrics")
            if code == 200 and isinstance(text, str):
                out[n] = sum(float(x) for x in _RESTARTS.findall(text))
        return out

    def health(self) -> dict[str, int]:
        """Per service: the status code of ``/healthz`` (0 = no answer)."""
        return {n: get(port, "/healthz")[0] for n, port in self.ports.items()}

    def status(self, name: str) -> dict:
        code, doc = get(self.ports[name], "/status")
        if code != 200 or not isinstance(doc, dict):
            raise RuntimeError(f"{name}: /status answered {code}: {str(doc)[:200]}")
        return doc

    def consumers(self) -> dict[str, dict]:
        """Services that consume streams: name → {"group", "streams"}, from their ``/status``."""
        out = {}
        for n in self.ports:
            doc = self.status(n)
            if doc.get("streams_consumed"):
                out[n] = {"group": doc["group"], "streams": list(doc["streams_consumed"])}
        return out

    def last_error(self, name: str) -> str:
        """The ``error`` of the newest log line of ``name`` that has one (crash diagnosis)."""
        for line in reversed(self.log_tail(name, 2000).splitlines()):
            m = re.search(r'"error": "([^"]{0,300})', line)
            if m:
                return m.group(1)
        return ""

    def log_tail(self, name: str, n: int = 30) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def start(*, redis_url: str, database_url: str, data_dir: Path, port_offset: int,
          namespace: str | None = None, ready_timeout_s: float = 300.0,
          log: Callable[[str], None] = print) -> Mesh:
    """Start every service and wait until each answers ``/readyz`` (a 503 whose only missing
    checks are in :data:`EXPECTED_NOT_READY` counts). Stops them on failure."""
    namespace = namespace or f"tmfuzz:{uuid.uuid4().hex[:8]}:"
    token = uuid.uuid4().hex
    sp = specs(redis_url=redis_url, database_url=database_url, namespace=namespace,
               data_dir=data_dir, port_offset=port_offset, admin_token=token)
    sup = Supervisor(sp, state_path=data_dir / "fuzz-mesh.json", log_dir=data_dir / "logs",
                     grace_s=15)
    mesh = Mesh(sup, namespace, data_dir, token, {s.name: s.port for s in sp if s.port is not None})
    t0 = time.monotonic()
    sup.start()
    try:
        pending = set(mesh.ports)
        while pending:
            sup.poll()
            for n in sorted(pending):
                code, body = get(mesh.ports[n], "/readyz", timeout=3)
                not_ready = set(body.get("not_ready", [])) if isinstance(body, dict) else {"?"}
                if code == 200 or (code == 503 and not_ready <= EXPECTED_NOT_READY):
                    pending.discard(n)
            if time.monotonic() - t0 > ready_timeout_s:
                tails = "\n".join(f"--- {n}\n{mesh.log_tail(n, 10)}" for n in sorted(pending))
                raise RuntimeError(f"not ready after {ready_timeout_s:.0f}s: {sorted(pending)}\n"
                                   f"{tails}")
            time.sleep(0.5)
    except BaseException:
        sup.stop()
        raise
    log(f"mesh: {len(sp)} services ready in {time.monotonic() - t0:.1f}s "
        f"(namespace {namespace}, ports {min(mesh.ports.values())}-{max(mesh.ports.values())})")
    return mesh


def spec_env(mesh: Mesh, name: str) -> dict[str, str]:
    """The environment a service was started with (for building its app elsewhere)."""
    return dict(mesh.sup.procs[name].spec.env)
