"""The simulator's HTTP front door, against the real process over HTTP (issue 19, part 7).

A large body from a caller who may not send it is refused on its headers, before it is read: the
answer comes at once, the process's memory does not grow by the body, and the sim keeps serving.
Then 401 comes before 422, the control API takes JSON only (415), a 422 never echoes the input,
and the API documentation pages are off unless ``TM_SIM_DOCS_ENABLED`` is set.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import httpx
import psutil
import pytest
from tm_common.testing.sim import run_sim

TOKEN = "hygiene-admin-token-9f2c"
CAP = 64 * 1024                       # the open sim's body cap (TM_SIM_MAX_BODY_BYTES)
BIG = 50 * 1024 * 1024                # 50 MB
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A sim with an admin token (as deployed)."""
    with run_sim(tmp_path_factory.mktemp("sim-guarded"), TM_ADMIN_TOKEN=TOKEN) as sim:
        yield sim


@pytest.fixture(scope="module")
def open_sim(tmp_path_factory):
    """A sim without a token (the open development venue), with a small body cap."""
    with run_sim(tmp_path_factory.mktemp("sim-open"), TM_SIM_MAX_BODY_BYTES=str(CAP)) as sim:
        yield sim


def _port(sim) -> int:
    return int(sim.url.rsplit(":", 1)[1])


def _rss(sim) -> int:
    return psutil.Process(sim.proc.pid).memory_info().rss


def _status_line(data: bytes) -> int:
    head = data.split(b"\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 "), head
    return int(head.split()[1])


def _send_big(sim, path: str, headers: dict[str, str], *, chunked: bool,
              total: int = BIG, timeout_s: float = 10.0) -> tuple[int, bytes, int, float]:
    """POST ``total`` bytes to ``path`` on a raw socket, streamed by a writer thread (chunked,
    or under a ``Content-Length``) while this thread waits for the answer. Returns (status,
    the answer's bytes, bytes written before the writer stopped, seconds to the answer)."""
    sock = socket.create_connection(("127.0.0.1", _port(sim)), timeout=timeout_s)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{_port(sim)}",
            *(f"{k}: {v}" for k, v in headers.items()),
            "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"]
    written = 0
    stop = threading.Event()

    def writer() -> None:
        nonlocal written
        block = b"x" * CHUNK
        frame = f"{CHUNK:x}\r\n".encode() + block + b"\r\n" if chunked else block
        try:
            while written < total and not stop.is_set():
                sock.sendall(frame)
                written += CHUNK
            if chunked and not stop.is_set():
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass                                  # the server closed the connection: refused

    started = time.monotonic()
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
        # the body may come in a later segment than the headers: read it whole
        head_end = answer.find(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", answer[:head_end])
        while head_end >= 0 and length and len(answer) < head_end + 4 + int(length.group(1)):
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    finally:
        elapsed = time.monotonic() - started
        stop.set()
        thread.join(timeout_s)
        sock.close()
    return _status_line(answer), answer, written, elapsed


def _healthy(sim) -> bool:
    return httpx.get(sim.url + "/healthz", timeout=5).json() == {"status": "ok"}


# -- refused before the body is read -------------------------------------------------------------
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_50mb_unauthenticated_body_is_refused_unread(guarded, chunked):
    before = _rss(guarded)
    status, answer, written, elapsed = _send_big(
        guarded, "/sim/clock", {"Content-Type": "application/json"}, chunked=chunked)
    assert status == 401, answer
    assert b"www-authenticate: bearer" in answer.lower()
    assert b"connection: close" in answer.lower()
    assert elapsed < 5.0, f"answered after {elapsed:.1f} s: it waited for the body"
    grown = _rss(guarded) - before
    assert grown < 16 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
    assert _healthy(guarded)
    # The server did not take the 50 MB: it answered and closed while the writer had sent less
    # than the whole body (the kernel's socket buffers hold a few MB at most).
    assert written < BIG, written


def test_a_50mb_unsigned_order_is_refused_on_its_headers(guarded):
    """Bybit's private API: a missing API key is refused (retCode 10003) before the body."""
    status, answer, _, elapsed = _send_big(
        guarded, "/v5/order/create", {"Content-Type": "application/json"}, chunked=True)
    assert status == 200 and b'"retCode":10003' in answer.replace(b" ", b""), answer
    assert elapsed < 5.0 and _healthy(guarded)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_cap_is_a_413_and_memory_stays_bounded(open_sim, chunked):
    """Without a token the control API is open; the cap still bounds what is read: a declared
    length over it is refused at once, a chunked body as soon as it passes it."""
    before = _rss(open_sim)
    status, answer, _written, elapsed = _send_big(
        open_sim, "/sim/clock", {"Content-Type": "application/json"}, chunked=chunked)
    assert status == 413, answer
    assert elapsed < 5.0
    grown = _rss(open_sim) - before
    assert grown < 16 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
    assert _healthy(open_sim)
    # Bodies under the cap are still served.
    r = httpx.post(open_sim.url + "/sim/clock", json={"steps": 1}, timeout=10)
    assert r.status_code == 200, r.text


def test_the_cap_applies_to_the_signed_api_too(open_sim):
    r = httpx.post(open_sim.url + "/v5/order/create", content=b"{" + b" " * (CAP + 1) + b"}",
                   headers={"Content-Type": "application/json", "X-BAPI-API-KEY": "itest-key"},
                   timeout=10)
    assert r.status_code == 413, r.text


# -- 401 before 422; JSON only; no echo ----------------------------------------------------------
@pytest.mark.parametrize("path", ["/sim/clock", "/sim/faults", "/sim/reset", "/sim/bars",
                                  "/sim/funding", "/sim/transfer"])
def test_unauthenticated_malformed_json_is_401_not_422(guarded, path):
    for body in (b"{not json", b"[1, 2", b'{"steps": NaN}', b"\xff\xfe"):
        r = httpx.post(guarded.url + path, content=body,
                       headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 401, (path, body, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"detail": "admin token required: missing bearer token"}
    r = httpx.post(guarded.url + path, content=b"{not json", timeout=10,
                   headers={"Content-Type": "application/json", "Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["detail"].endswith("invalid bearer token")


def _admin(**headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", **headers}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x",
                                          "application/jsonp"])
def test_control_posts_take_json_only(guarded, content_type):
    headers = _admin(**({"Content-Type": content_type} if content_type else {}))
    r = httpx.post(guarded.url + "/sim/faults", content=b'{"rate_limit_prob": 0.5}',
                   headers=headers, timeout=10)
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["detail"]
    faults = httpx.get(guarded.url + "/sim/faults", timeout=10).json()["config"]
    assert faults["rate_limit_prob"] == 0.0, "a refused request changed the venue"
    r = httpx.post(guarded.url + "/sim/faults", content=b'{"rate_limit_prob": 0.0}',
                   headers=_admin(**{"Content-Type": "application/json; charset=utf-8"}),
                   timeout=10)
    assert r.status_code == 200, r.text


def test_a_422_does_not_echo_the_input(guarded):
    echo = "ECHO-ME-3b9d" * 10
    for path, body in (("/sim/reset", {"initial_balance": echo}),
                       ("/sim/clock", {"steps": echo, echo: 1}),
                       ("/sim/faults", {"latency_ms": echo}),
                       ("/sim/bars", {"bars": [{"symbol": echo, "open_time_ms": echo}]})):
        r = httpx.post(guarded.url + path, json=body, headers=_admin(), timeout=10)
        assert r.status_code == 422, (path, r.text)
        assert echo not in r.text, (path, r.text)
        detail = r.json()["detail"]
        assert detail and all(set(e) <= {"type", "loc", "msg"} for e in detail), detail
        assert all("input" not in e for e in detail)


# -- documentation pages -------------------------------------------------------------------------
def test_docs_are_off_by_default(guarded):
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        r = httpx.get(guarded.url + path, timeout=10)
        assert r.status_code == 404, (path, r.status_code)
        assert "cdn" not in r.text.lower() and "swagger" not in r.text.lower()


def test_docs_with_the_development_flag():
    from starlette.testclient import TestClient
    from tm_exchange_sim.app import create_app
    from tm_exchange_sim.config import ExchangeSimSettings

    with TestClient(create_app(ExchangeSimSettings.from_values(sim_docs_enabled=True))) as c:
        assert c.get("/docs").status_code == 200
        assert c.get("/redoc").status_code == 200
        assert "/v5/order/create" in c.get("/openapi.json").json()["paths"]
    with TestClient(create_app(ExchangeSimSettings.from_values())) as c:
        assert c.get("/openapi.json").status_code == 404
