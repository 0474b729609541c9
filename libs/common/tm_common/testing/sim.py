"""The exchange sim as a real uvicorn subprocess on a free port (tests and benchmarks)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tm_common.testing.processes import ServiceProcess
from tm_common.testing.redis import free_port

KEY = "itest-key"
SECRET = "itest-secret-do-not-log"
QUIET_FAULTS = {"rate_limit_prob": 0.0, "http_5xx_prob": 0.0, "timeout_prob": 0.0,
                "latency_ms": 0.0, "ws_drop_prob": 0.0, "rate_limit_per_s": 1000,
                "paths": None, "timeout_s": 15.0,
                "ip_limit_per_5s": None, "ip_ban_s": 0, "ip_ban_now": True}  # lifts any ban


@dataclass
class Sim:
    url: str
    ws_url: str
    log_path: str
    proc: subprocess.Popen[bytes] | None = None

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.post(self.url + path, json=body or {}, timeout=10)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        r = httpx.get(self.url + path, params=params, timeout=10)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    def advance(self, steps: int = 1) -> dict[str, Any]:
        return self.post("/sim/clock", {"steps": steps})

    def session(self, **kwargs: Any) -> Any:
        """A pybit ``HTTP`` session signed with the test key, pointed at this sim."""
        from pybit.unified_trading import HTTP

        args = {"api_key": KEY, "api_secret": SECRET, "max_retries": 1, **kwargs}
        http = HTTP(**args)
        http.endpoint = self.url
        return http


@contextmanager
def run_sim(log_dir: str | Path, *, port: int | None = None, **env_extra: str) -> Iterator[Sim]:
    """Start ``python -m tm_exchange_sim``; yields a :class:`Sim` once ``/healthz`` answers
    (within 30 s, else ``RuntimeError`` with its log); stopped (SIGTERM) afterwards."""
    port = port or free_port()
    proc = ServiceProcess("tm_exchange_sim", {
        "TM_HTTP_HOST": "127.0.0.1", "TM_SIM_API_KEY": KEY, "TM_SIM_API_SECRET": SECRET,
        "TM_SIM_SLIPPAGE_BPS": "2", "TM_SIM_RATE_LIMIT_PER_S": "1000", "TM_LOG_LEVEL": "info",
        "TM_SIM_SEED": "42", **env_extra}, Path(log_dir) / f"sim-{port}.log", port=port,
        http_timeout_s=1, stop_timeout_s=10)
    try:
        proc.start(healthy_within_s=30)
    except AssertionError as e:
        proc.stop(signal.SIGKILL)
        raise RuntimeError(f"exchange sim did not start: {e}") from None
    try:
        yield Sim(proc.base, f"ws://127.0.0.1:{port}", str(proc.log_path), proc.proc)
    finally:
        proc.stop()
