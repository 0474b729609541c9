"""A real local HTTP peer for tests: a threaded ``http.server`` on 127.0.0.1 that answers
whatever a test tells it to (a misbehaving venue for the fuzz tests, a service's ``/readyz`` for
``tm demo``'s start-up), not a mock of the client under test."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    """What the venue sends: a status, a body (bytes), a content type; ``short_by`` > 0 sends
    a Content-Length that many bytes larger than the body and closes the connection."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    short_by: int = 0


class StubHTTP:
    """A threaded ``http.server`` on 127.0.0.1: every request (any method, any path) gets the
    answer set for the longest matching path prefix, else a 404. ``requests`` counts calls."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[tuple[str, str]] = []
        venue = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                path = self.path.split("?")[0]
                venue.requests.append((self.command, path))
                match = max((p for p in venue.answers if path.startswith(p)), key=len,
                            default=None)
                a = venue.answers[match] if match else Answer(404, b"no route", "text/plain")
                self.send_response(a.status)
                self.send_header("Content-Type", a.content_type)
                self.send_header("Content-Length", str(len(a.body) + a.short_by))
                if a.short_by:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(a.body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, path: str, body: bytes | str, status: int = 200,
            content_type: str = "application/json", short_by: int = 0) -> None:
        if isinstance(body, str):
            body = body.encode()
        self.answers[path] = Answer(status, body, content_type, short_by)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


__all__ = ["Answer", "StubHTTP"]
