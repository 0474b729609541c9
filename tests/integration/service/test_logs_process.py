"""Logs of a real service process: one JSON object per line, with service and correlation_id,
and a known secret never appears, however the code tries to log it."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from tm_common.testing.factories import bar_event

IN, OUT = "example.in", "example.out"
LEAKY = str(Path(__file__).with_name("leaky_service.py"))


def test_logs_are_json_with_context_and_never_show_the_secret(redis_url, namespace,
                                                               service_factory, stream_client,
                                                               wait):
    svc = service_factory(redis_url, namespace, argv=[sys.executable, LEAKY])
    secret = svc.env["TM_ADMIN_TOKEN"]
    sent = [bar_event("SOLUSDT", i, ts_init_ns=time.time_ns()) for i in range(2)]
    stream_client.publish(IN, sent)
    wait(lambda: svc.status()["handled"] == 2, 15, "2 events handled (after one failure each)")
    status_text = svc.get("/status").text
    svc.signal(signal.SIGTERM)
    assert svc.wait(20) == 0

    raw = svc.logs()
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]   # every line is JSON
    assert secret not in raw and secret not in status_text
    assert json.loads(status_text)["extra"] == {"token": "***", "note": "***"}
    assert all(line["service"] == "echo" for line in lines)

    by_event: dict[str, list[dict]] = {}
    for line in lines:
        by_event.setdefault(line["event"], []).append(line)
    cids = {e.correlation_id for e in sent}
    for name in ("leak.message", "leak.keys", "leak.traceback", "example.echoed",
                 "bus.handler_failed"):
        assert by_event.get(name), f"no {name} line in:\n{raw[-2000:]}"
        assert {line["correlation_id"] for line in by_event[name]} == cids, name
    for line in by_event["leak.message"] + by_event["leak.keys"] + by_event["leak.traceback"]:
        assert line["instrument"] == "SOLUSDT" and line["level"] in ("info", "error")
    assert by_event["leak.message"][0]["note"] == "the admin token is ***"
    keys = by_event["leak.keys"][0]
    assert keys["api_key"] == "***" and keys["password"] == "***"
    assert keys["nested"] == {"auth_token": "***"}
    assert "ValueError: cannot authenticate with ***" in by_event["leak.traceback"][0]["exception"]
    assert "upstream refused token ***" in by_event["bus.handler_failed"][0]["error"]
    # uvicorn's own lines go through the same pipeline.
    assert any(line.get("logger") == "uvicorn.error" for line in lines)
    assert [f["causation_id"] for _, f in stream_client.entries(OUT)] == [e.event_id for e in sent]
