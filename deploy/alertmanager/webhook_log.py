"""The generic alert receiver of the compose stack: Alertmanager's webhook in, one JSON log line
per alert out (stdout, so alerts land in ``docker compose logs alert-webhook`` and in Loki).

    python webhook_log.py [--host 0.0.0.0] [--port 9099] [--record FILE]

Alertmanager POSTs its webhook payload (version 4: ``receiver``, ``status``, ``alerts`` with
``labels``, ``annotations``, ``startsAt``...) to ``/<anything>``; the path is logged as the route
(alertmanager.yml names each receiver's path). ``--record FILE`` also appends each payload, as
received, one JSON document per line (for tests and audits). Standard library only: it runs in
the Trade-Matrix image or any ``python:3`` image. Answers 200 to a JSON object, 400 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1_048_576
LEVELS = {"critical": "error", "warning": "warning", "info": "info"}
_lock = threading.Lock()


def lines(payload: dict[str, Any], route: str) -> list[dict[str, Any]]:
    """One log record per alert of ``payload`` (the Alertmanager webhook body)."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out = []
    for a in payload.get("alerts") or []:
        labels, ann = a.get("labels") or {}, a.get("annotations") or {}
        status = a.get("status") or payload.get("status", "firing")
        severity = labels.get("severity", "")
        out.append({"timestamp": now, "event": f"alert.{status}",
                    "level": "info" if status == "resolved" else LEVELS.get(severity, "warning"),
                    "route": route, "receiver": payload.get("receiver"),
                    "alertname": labels.get("alertname"), "severity": severity,
                    "category": labels.get("category"), "alert_service": labels.get("service"),
                    "instrument": labels.get("instrument"), "summary": ann.get("summary"),
                    "starts_at": a.get("startsAt"), "labels": labels})
    return out


class Handler(BaseHTTPRequestHandler):
    record: str | None = None

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        size = int(self.headers.get("Content-Length") or 0)
        if size > MAX_BODY:
            return self._reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
        try:
            payload = json.loads(self.rfile.read(size) or b"null")
        except ValueError:
            return self._reply(400, {"error": "body is not JSON"})
        if not isinstance(payload, dict):
            return self._reply(400, {"error": "body is not a JSON object"})
        route = self.path.strip("/") or "default"
        with _lock:
            for rec in lines(payload, route):
                print(json.dumps(rec, separators=(",", ":")), flush=True)
            if self.record:
                with open(self.record, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"path": self.path, "payload": payload}) + "\n")
        self._reply(200, {"ok": True})

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200, {"ok": True})      # a health check

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet access log
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=9099)
    ap.add_argument("--record", default=None, help="append each payload to this file")
    args = ap.parse_args(argv)
    Handler.record = args.record
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(json.dumps({"event": "alert_webhook.listening", "level": "info",
                      "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
