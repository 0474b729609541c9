"""``python -m tm_fake_svc``: serve ``/status`` on ``TM_HTTP_PORT`` until SIGTERM.

Env: ``TM_SERVICE_NAME``, ``TM_HTTP_PORT``; ``FAKE_IGNORE_SIGTERM=1`` ignores SIGTERM (to test the
SIGKILL escalation). ``/status`` also echoes the TM_* URLs it was given, and the names (never the
values) of all its environment variables, so tests can check them.
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
STARTED_NS = time.time_ns()
handled = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global handled
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
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    if os.environ.get("FAKE_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"{NAME} listening on {PORT}", flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
