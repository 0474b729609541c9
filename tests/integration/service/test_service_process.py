"""The example service as a real process on the real Redis: /status, /metrics (promtool),
graceful SIGTERM/SIGINT under load with exactly-once outputs after a restart."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections import Counter

import pytest
from tm_common.testing.factories import bar_event

IN, OUT = "example.in", "example.out"


def events(n: int, start: int = 0):
    now = time.time_ns()
    return [bar_event("ETHUSDT" if i % 2 else "BTCUSDT", i, ts_init_ns=now) for i in
            range(start, start + n)]


def test_status_reports_last_event_and_counts(redis_url, namespace, service_factory, wait,
                                               stream_client):
    svc = service_factory(redis_url, namespace)
    sent = events(5)
    stream_client.publish(IN, sent)

    st = wait(lambda: (s := svc.status())["handled"] == 5 and s, 10, "5 events handled")
    assert st["service"] == "echo" and st["group"] == "echo" and st["consumer"] == "echo-0"
    assert st["version"] == "0.1.0"
    assert st["dead_lettered"] == 0
    last = st["last_event"]
    assert last["event_id"] == sent[-1].event_id
    assert last["correlation_id"] == sent[-1].correlation_id
    assert last["type"] == "bar.closed" and last["stream"] == IN
    assert last["handled_at_ns"] >= sent[-1].ts_init_ns
    assert st["extra"] == {"out_stream": OUT}
    # Lag and pending come from the poller (every 0.2 s here).
    st = wait(lambda: (s := svc.status())["streams"].get(IN) == {"lag": 0, "pending": 0} and s,
              5, "lag/pending polled")
    outs = stream_client.entries(OUT)
    assert [f["causation_id"] for _, f in outs] == [e.event_id for e in sent]
    assert "tm-test-secret" not in svc.get("/status").text


def test_metrics_pass_promtool_and_count_events(redis_url, namespace, service_factory, wait,
                                                stream_client):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run tools/install_promtool.sh")
    svc = service_factory(redis_url, namespace)
    stream_client.publish(IN, events(3))
    wait(lambda: svc.status()["handled"] == 3, 10, "3 events handled")
    wait(lambda: 'tm_consumer_lag{group="echo",stream="example.in"} 0.0' in svc.get("/metrics").text,
         5, "lag gauge")

    r = svc.get("/metrics")
    assert r.status_code == 200                       # the exact path: no 307 to /metrics/
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    check = subprocess.run([promtool, "check", "metrics"], input=r.content, capture_output=True, check=False,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == b"" and check.stderr.strip() == b"", check.stdout + check.stderr

    def value(name: str, **labels: str) -> float:
        lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        m = re.search(rf"^{re.escape(name)}{{{re.escape(lab)}}} (\S+)$", text, re.MULTILINE)
        assert m, f"{name}{{{lab}}} not exported"
        return float(m.group(1))

    assert value("tm_events_consumed_total", stream=IN, type="bar.closed") == 3
    assert value("tm_events_published_total", stream=OUT, type="bar.closed") == 3
    assert value("tm_handler_duration_seconds_count", stream=IN, type="bar.closed") == 3
    assert value("tm_event_hop_latency_seconds_count", stream=IN, type="bar.closed") == 3
    # Hop latency is from the input's ts_init_ns (set just before publishing): well under 10 s.
    assert value("tm_event_hop_latency_seconds_bucket", stream=IN, type="bar.closed", le="10.0") == 3
    assert value("tm_consumer_pending", stream=IN, group="echo") == 0
    assert value("tm_build_info", service="echo", version="0.1.0") == 1


def test_sigterm_under_load_exits_0_and_restart_gives_exactly_once(redis_url, namespace,
                                                                    service_factory, wait,
                                                                    stream_client):
    n = 300
    sent = events(n)
    stream_client.publish(IN, sent)
    first = service_factory(redis_url, namespace, TM_EXAMPLE_DELAY_MS="5")
    wait(lambda: len(stream_client.entries(OUT)) >= 30, 15, "the first outputs")
    first.signal(signal.SIGTERM)
    assert first.wait(20) == 0, first.logs()[-3000:]
    done_first = len(stream_client.entries(OUT))
    assert 30 <= done_first < n, "the signal must land while inputs remain"
    assert '"service.exit"' in first.logs() and "SIGTERM" in first.logs()

    second = service_factory(redis_url, namespace, TM_EXAMPLE_DELAY_MS="1")
    wait(lambda: len(stream_client.entries(OUT)) >= n, 20, "all outputs")
    wait(lambda: second.status()["streams"].get(IN) == {"lag": 0, "pending": 0}, 5, "drained")
    time.sleep(0.3)                                     # anything extra would show up now
    outs = stream_client.entries(OUT)
    ids = [f["event_id"] for _, f in outs]
    assert len(ids) == n and len(set(ids)) == n, "an input was handled twice"
    causes = Counter(f["causation_id"] for _, f in outs)
    assert set(causes) == {e.event_id for e in sent} and set(causes.values()) == {1}
    assert second.status()["handled"] == n - done_first
    assert stream_client.entries(IN + ".dlq") == []


def test_sigint_idle_exits_0(redis_url, namespace, service_factory):
    svc = service_factory(redis_url, namespace)
    svc.signal(signal.SIGINT)
    assert svc.wait(20) == 0, svc.logs()[-3000:]
    assert '"service.stopped"' in svc.logs()
