"""The exchange sim as a real uvicorn subprocess on a free port (tests and benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from tm_common.testing.redis import free_port

KEY = "itest-key"
SECRET = "itest-secret-do-not-log"
QUIET_FAULTS = {"rate_limit_prob": 0.0, "http_5xx_prob": 0.0, "timeout_prob": 0.0,
                "latency_ms": 0.0, "ws_drop_prob": 0.0, "rate_limit_per_s": 1000,
                "paths": None, "timeout_s": 15.0}


@dataclass
class Sim:
    url: str
    ws_url: str
    log_path: str
    proc: subprocess.Popen | None = None

    def post(self, path: str, body: dict | None = None) -> dict:
        r = httpx.post(self.url + path, json=body or {}, timeout=10)
        r.raise_for_status()
        return r.json()

    def get(self, path: str, **params) -> dict:
        r = httpx.get(self.url + path, params=params, timeout=10)
        r.raise_for_status()
        return r.json()

    def advance(self, steps: int = 1) -> dict:
        return self.post("/sim/clock", {"steps": steps})

    def session(self, **kwargs):
        from pybit.unified_trading import HTTP

        args = {"api_key": KEY, "api_secret": SECRET, "max_retries": 1, **kwargs}
        http = HTTP(**args)
        http.endpoint = self.url
        return http


@contextmanager
def run_sim(log_dir: str | Path, *, port: int | None = None, **env_extra: str) -> Iterator[Sim]:
    """Start ``python -m tm_exchange_sim``; yields a :class:`Sim` once ``/healthz`` answers."""
    port = port or free_port()
    log_path = Path(log_dir) / f"sim-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update({"TM_HTTP_HOST": "127.0.0.1", "TM_HTTP_PORT": str(port),
                "TM_SIM_API_KEY": KEY, "TM_SIM_API_SECRET": SECRET,
                "TM_SIM_SLIPPAGE_BPS": "2", "TM_SIM_RATE_LIMIT_PER_S": "1000",
                "TM_LOG_LEVEL": "info", "TM_SIM_SEED": "42", **env_extra})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tm_exchange_sim"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"exchange sim did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    try:
        yield Sim(url, f"ws://127.0.0.1:{port}", str(log_path), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
