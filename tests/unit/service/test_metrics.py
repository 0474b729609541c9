"""tm_common.metrics: names, the observer's arithmetic, and promtool-clean exposition."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from tm_common.bus.protocol import Delivery
from tm_common.errors import TransientError
from tm_common.metrics import LATENCY_BUCKETS_S, PrometheusObserver, ServiceMetrics
from tm_common.testing.factories import bar_event


def sample(m: ServiceMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_observer_counts_and_latencies():
    m = ServiceMetrics("signal", "1.2.3")
    obs = m.observer
    assert isinstance(obs, PrometheusObserver)
    ev = bar_event(ts_init_ns=1_000_000_000)
    obs.handled("md.bar", ev, 0.0004, now_ns=1_003_000_000)          # 3 ms after ts_init
    obs.handled("md.bar", ev, 0.002, now_ns=1_250_000_000)           # 250 ms after
    obs.published("signal.tl", ev)
    obs.dead_lettered("md.bar", "?", "malformed")
    obs.failed(Delivery("md.bar", "1-0", {b"type": b"bar.closed"}, 1), TransientError("x"), 1)
    obs.transport_error(ConnectionError("down"))

    assert sample(m, "tm_events_consumed_total", stream="md.bar", type="bar.closed") == 2
    assert sample(m, "tm_events_published_total", stream="signal.tl", type="bar.closed") == 1
    assert sample(m, "tm_events_dead_lettered_total", stream="md.bar", type="?") == 1
    assert sample(m, "tm_handler_failures_total", stream="md.bar", type="bar.closed",
                  error="TransientError") == 1
    assert sample(m, "tm_transport_errors_total", error="ConnectionError") == 1
    hop = {"stream": "md.bar", "type": "bar.closed"}
    assert sample(m, "tm_event_hop_latency_seconds_sum", **hop) == pytest.approx(0.253)
    assert sample(m, "tm_event_hop_latency_seconds_bucket", le="0.005", **hop) == 1
    assert sample(m, "tm_event_hop_latency_seconds_bucket", le="0.25", **hop) == 2
    assert sample(m, "tm_handler_duration_seconds_bucket", le="0.0005", **hop) == 1
    assert sample(m, "tm_handler_duration_seconds_sum", **hop) == pytest.approx(0.0024)
    assert sample(m, "tm_build_info", service="signal", version="1.2.3") == 1
    assert obs.last_handled is not None and obs.last_handled[2] == 1_250_000_000


def test_hop_latency_is_from_ts_init_not_market_time_and_never_negative():
    """A replayed bar from 2023 handled now is a fast hop, not a two-year latency; clock skew
    (consumer behind producer) is clamped to 0."""
    m = ServiceMetrics("regime", "1", process_collectors=False)
    old_bar = bar_event(ts_init_ns=5_000_000_000)
    assert old_bar.ts_event_ns < 2_000_000_000_000_000_000
    m.observer.handled("md.bar", old_bar, 0.001, now_ns=5_002_000_000)
    m.observer.handled("md.bar", old_bar, 0.001, now_ns=4_000_000_000)
    lab = {"stream": "md.bar", "type": "bar.closed"}
    assert sample(m, "tm_event_hop_latency_seconds_sum", **lab) == pytest.approx(0.002)
    assert sample(m, "tm_event_hop_latency_seconds_bucket", le="0.0001", **lab) == 1


def test_buckets_span_sub_millisecond_to_seconds():
    assert LATENCY_BUCKETS_S[0] <= 0.0001 and LATENCY_BUCKETS_S[-1] >= 10
    assert list(LATENCY_BUCKETS_S) == sorted(LATENCY_BUCKETS_S)


def test_registry_is_per_service_and_names_have_the_prefix():
    a, b = ServiceMetrics("a", "1"), ServiceMetrics("b", "1")   # no duplicate-name clash
    assert a.registry is not b.registry and a.registry is not REGISTRY
    own = [mf.name for mf in a.registry.collect()
           if not mf.name.startswith(("process_", "python_"))]
    assert own and all(n.startswith("tm_") for n in own)
    shared = CollectorRegistry()
    ServiceMetrics("c", "1", registry=shared, process_collectors=False)
    assert shared.get_sample_value("tm_build_info", {"service": "c", "version": "1"}) == 1


def test_exposition_passes_promtool_lint():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run tools/install_promtool.sh")
    m = ServiceMetrics("executor", "0.1.0")
    ev = bar_event(ts_init_ns=1)
    m.observer.handled("risk.order", ev, 0.01, 2)
    m.observer.published("exec.report", ev)
    m.observer.dead_lettered("risk.order", "bar.closed", "x")
    m.observer.failed(Delivery("risk.order", "1-0", {"type": "bar.closed"}, 1), ValueError(), 1)
    m.observer.transport_error(OSError())
    m.consumer_lag.labels("risk.order", "executor").set(4)
    m.consumer_pending.labels("risk.order", "executor").set(1)
    m.task_restarts.labels("consumer:executor").inc()
    m.ready.set(1)
    text = m.exposition()
    assert re.search(rb'^tm_consumer_lag\{group="executor",stream="risk.order"\} 4.0$', text, re.MULTILINE)
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30,
                       check=False)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", r.stdout + r.stderr
    # The check itself can fail: a counter without _total is a lint error.
    bad = b"# HELP tm_bad A counter.\n# TYPE tm_bad counter\ntm_bad 1\n"
    r = subprocess.run([promtool, "check", "metrics"], input=bad, capture_output=True, timeout=30,
                       check=False)
    assert r.returncode != 0 and b"_total" in r.stdout + r.stderr
