"""``python -m tm_fake_svc``: serve ``/status`` on ``TM_HTTP_PORT`` until SIGTERM.

Env: ``TM_SERVICE_NAME``, ``TM_HTTP_PORT``; ``FAKE_IGNORE_SIGTERM=1`` ignores SIGTERM (to test the
SIGKILL escalation). ``/status`` also echoes the TM_* URLs it was given, and the names (never the
values) of all its environment variables, so tests can check them.

``/readyz``: 200, or with ``FAKE_NOT_READY=check:why`` 503 and the service's body
(``{"ready": false, "not_ready": [check], "checks": {...}}``). ``FAKE_EXTRA`` (JSON) is served
as ``/status``'s ``extra``. ``POST /breaker/<action>`` answers like the risk service: 403 without
``TM_RISK_ADMIN_TOKEN`` (else ``TM_ADMIN_TOKEN``), 401 on a wrong bearer token, else ``{"action", "reason"}``.
``FAKE_CRASH=text`` prints ``text`` and exits 3 at once (a crash loop).

The ``FAKE_*`` values may also come from ``<TM_DATA_DIR>/fake-<TM_SERVICE_NAME>.json``
(``{"FAKE_NOT_READY": ...}``): ``tm up`` passes no ``FAKE_*`` variable to a service.
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ.get("TM_SERVICE_NAME", "fake")
PORT = int(os.environ["TM_HTTP_PORT"])


def _config() -> dict:
    cfg = {k: v for k, v in os.environ.items() if k.startswith("FAKE_")}
    if os.environ.get("TM_DATA_DIR"):
        try:
            with open(os.path.join(os.environ["TM_DATA_DIR"], f"fake-{NAME}.json")) as fh:
                cfg.update(json.load(fh))
        except OSError:
            pass
    return cfg


CFG = _config()
STARTED_NS = time.time_ns()
handled = 0


class Handler(BaseHTTPRequestHandler):
    def _json(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        doc = json.loads(self.rfile.read(length) or b"{}")
        # as risk: its own token first, the shared one as a fallback (tm_common.admin_tokens)
        token = os.environ.get("TM_RISK_ADMIN_TOKEN") or os.environ.get("TM_ADMIN_TOKEN")
        if not self.path.startswith("/breaker/"):
            return self._json(404, {"error": "not found"})
        if not token:
            return self._json(403, {"error": "forbidden", "detail": "admin token not configured"})
        if self.headers.get("Authorization") != f"Bearer {token}":
            return self._json(401, {"error": "unauthorized"})
        return self._json(200, {"action": self.path.rsplit("/", 1)[1], "reason": doc.get("reason"),
                                "service": NAME})

    def do_GET(self):
        global handled
        if self.path == "/readyz":
            check, _, why = CFG.get("FAKE_NOT_READY", "").partition(":")
            if not check:
                return self._json(200, {"ready": True, "not_ready": [], "checks": {"redis": "ok"}})
            return self._json(503, {"ready": False, "service": NAME, "not_ready": [check],
                                    "checks": {"redis": "ok", check: f"error: NotReady: {why}"}})
        if self.path != "/status":
            self.send_response(404)
            self.end_headers()
            return
        handled += 1
        body = json.dumps({
            "service": NAME, "handled": handled, "pid": os.getpid(),
            "last_event": {"type": "bar.closed", "handled_at_ns": time.time_ns()},
            "streams": {"tm:md.bar": {"lag": 2, "pending": 1}, "tm:md.dvol": {"lag": 1, "pending": 0}},
            "env": {k: os.environ.get(k) for k in
                    ("TM_REDIS_URL", "TM_DATABASE_URL", "TM_DATA_DIR", "TM_SERVICE_NAME")},
            "env_names": sorted(os.environ),
            "extra": json.loads(CFG.get("FAKE_EXTRA") or "{}"),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main() -> None:
    if CFG.get("FAKE_CRASH"):
        print("starting", flush=True)
        print(CFG["FAKE_CRASH"], flush=True)
        sys.exit(3)
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    if CFG.get("FAKE_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"{NAME} listening on {PORT}", flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
