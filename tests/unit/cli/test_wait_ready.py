"""``tm demo``'s start-up waits for every service's ``/readyz`` (``tm_app.mesh._wait_ready``): a
service whose only missing check is a model the gates refused counts as ready and is said to
trade flat; one whose registry has not answered yet is waited for (it may have a model)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

from tm_app.mesh import _wait_ready
from tm_common.models.cache import NOT_CHECKED_YET

NOT_CHECKED = (503, {"not_ready": ["model"], "checks": {"redis": "ok",
                                                         "model": f"error: NotReady: {NOT_CHECKED_YET}"}})
NO_MODEL = (503, {"not_ready": ["model"], "checks": {"redis": "ok",
                                                      "model": "error: NotReady: no production model"}})
READY = (200, {"not_ready": [], "checks": {"redis": "ok", "model": "ok"}})


def serve(answers: list[tuple[int, dict]]):
    """A /readyz that gives ``answers`` in turn, then the last one for ever."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            code, body = answers.pop(0) if len(answers) > 1 else answers[0]
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def supervisor(**ports: int):
    procs = {n: SimpleNamespace(spec=SimpleNamespace(port=p)) for n, p in ports.items()}
    return SimpleNamespace(procs=procs, poll=lambda: None)


def test_a_registry_not_checked_yet_is_waited_for_then_the_model_counts():
    regime = serve([NOT_CHECKED, NOT_CHECKED, READY])
    signal = serve([NOT_CHECKED, NO_MODEL])
    lines: list[str] = []
    try:
        _wait_ready(supervisor(regime=regime.server_port, signal=signal.server_port),
                    ("regime", "signal"), 20, lines.append)
    finally:
        regime.shutdown()
        signal.shutdown()
    # regime got its model: nothing said; signal has none: said once, with the settled reason
    assert len(lines) == 1 and lines[0].startswith("signal: running without a production model")
    assert "no production model" in lines[0] and NOT_CHECKED_YET not in lines[0]
