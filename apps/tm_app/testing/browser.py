"""A page loaded in a real headless Chromium, driven over the Chrome DevTools Protocol (CDP):
what the report's browser test uses to see what a user's browser sees.

Chromium runs with ``--headless=new --remote-debugging-port=0`` (it picks a free port and writes
it to ``DevToolsActivePort`` in its profile directory); the page target is driven over a
WebSocket (``websockets``). Console errors, uncaught exceptions and browser log errors are
collected while the page loads and runs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from tm_common.errors import TradeMatrixError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


class BrowserMissing(TradeMatrixError, RuntimeError):
    """No Chromium on this machine."""


def find_chromium() -> str:
    """The Chromium executable (``TM_TEST_CHROMIUM``, else the first of :data:`CHROMIUM_NAMES`
    on PATH). Raises :class:`BrowserMissing` naming what was looked for."""
    explicit = os.environ.get("TM_TEST_CHROMIUM")
    if explicit:
        if not Path(explicit).is_file():
            raise BrowserMissing(f"TM_TEST_CHROMIUM={explicit} is not a file")
        return explicit
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    raise BrowserMissing("no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) +
                         " on PATH); install it: apt-get install -y chromium")


@dataclass
class Page:
    """One CDP session on a page target; ``problems`` collects console errors, uncaught
    exceptions and error log entries as text."""

    ws: Any
    problems: list[str] = field(default_factory=list)
    _next: int = 0
    _events: list[dict] = field(default_factory=list)

    async def send(self, method: str, params: dict | None = None, timeout_s: float = 30) -> dict:
        self._next += 1
        mid = self._next
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout_s
        while True:
            msg = await self._recv(deadline, method)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"CDP {method}: {msg['error']}")
                return msg.get("result", {})

    async def _recv(self, deadline: float, what: str) -> dict:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"CDP: no answer to {what}")
        msg = json.loads(await asyncio.wait_for(self.ws.recv(), left))
        if "method" in msg:
            self._note(msg)
        return msg

    def _note(self, msg: dict) -> None:
        self._events.append(msg)
        m, p = msg["method"], msg.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.problems.append("exception: " + str(d.get("exception", {}).get("description")
                                                     or d.get("text")))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.problems.append("console." + p["type"] + ": " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.problems.append(f"log {e.get('source')}: {e.get('text')} {e.get('url', '')}")

    async def wait_event(self, method: str, timeout_s: float = 30) -> dict:
        for msg in self._events:
            if msg["method"] == method:
                return msg
        deadline = time.monotonic() + timeout_s
        while True:
            msg = await self._recv(deadline, method)
            if msg.get("method") == method:
                return msg

    async def goto(self, url: str, timeout_s: float = 30) -> None:
        """Navigate and wait for the load event."""
        self._events.clear()
        await self.send("Page.navigate", {"url": url})
        await self.wait_event("Page.loadEventFired", timeout_s)

    async def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression (JSON-serialisable; promises awaited)."""
        r = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                 "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"JS {expression!r}: {r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    async def screenshot(self, path: Path, width: int = 1280, height: int = 900) -> None:
        """A PNG of the whole page at ``width`` CSS pixels."""
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1,
                         "mobile": False})
        h = await self.eval("document.documentElement.scrollHeight")
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": int(h), "deviceScaleFactor": 1,
                         "mobile": False})
        r = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(r["data"]))


@asynccontextmanager
async def chromium_page(start_timeout_s: float = 30) -> AsyncIterator[Page]:
    """A headless Chromium with one page, Runtime/Log/Page events enabled; stopped on exit.
    Raises :class:`BrowserMissing` when no Chromium is installed."""
    exe = find_chromium()
    profile = Path(tempfile.mkdtemp(prefix="tm-chromium-"))
    args = [exe, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
            "--no-first-run", "--no-default-browser-check", "--disable-gpu",
            "--disable-extensions", "--disable-background-networking", "--disable-sync",
            "--window-size=1280,900", "about:blank"]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")        # Chromium refuses to run as root with its sandbox
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port = await _debug_port(profile, proc, start_timeout_s)
        page_ws = await _page_target(port, start_timeout_s)
        async with websockets.connect(page_ws, max_size=64 * 2**20) as ws:
            page = Page(ws)
            for domain in ("Page", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            yield page
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(profile, ignore_errors=True)


async def _debug_port(profile: Path, proc: subprocess.Popen, timeout_s: float) -> int:
    f = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise RuntimeError(f"chromium exited with {proc.returncode}: {err}")
        with suppress(OSError, ValueError, IndexError):
            return int(f.read_text().splitlines()[0])
        await asyncio.sleep(0.05)
    raise TimeoutError(f"chromium wrote no {f} within {timeout_s}s")


async def _page_target(port: int, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with suppress(OSError, ValueError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                for t in json.loads(r.read()):
                    if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                        return str(t["webSocketDebuggerUrl"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"chromium on port {port} shows no page target")
