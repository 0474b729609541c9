"""The signal service as a real process (``python -m tm_signal``) on real Redis, with a private
SQLite database holding the model registry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tm_common.testing.redis import free_port


class SignalProcess:
    def __init__(self, redis_url: str, namespace: str, db_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"signal-{self.port}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
        self.env.update({
            "TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_DATABASE_URL": db_url,
            "TM_HTTP_PORT": str(self.port), "TM_CONSUMER_NAME": "signal-0",
            "TM_DATA_DIR": str(workdir), "TM_READ_BLOCK_MS": "100",
            "TM_LAG_POLL_INTERVAL_S": "0.5", "PYTHONUNBUFFERED": "1"})
        self.proc: subprocess.Popen | None = None

    def start(self) -> SignalProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tm_signal"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.wait_for(lambda: self.get("/healthz").status_code == 200, 90, "/healthz")
        return self

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5.0)

    def wait_for(self, pred, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"signal exited ({self.proc.returncode}):\n{self.logs()[-3000:]}")
            try:
                v = pred()
                if v:
                    return v
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def signal_service(tmp_path):
    started: list[SignalProcess] = []

    def make(redis_url: str, namespace: str, db_url: str) -> SignalProcess:
        sp = SignalProcess(redis_url, namespace, db_url, tmp_path)
        started.append(sp)
        return sp.start()

    yield make
    for sp in started:
        sp.stop(signal.SIGKILL)
