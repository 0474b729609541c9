"""Prometheus metrics of the service base, on a per-service ``CollectorRegistry``.

Every name has the ``tm_`` prefix and passes ``promtool check metrics`` (counters end in
``_total``, durations are in seconds). Label values are bounded: ``stream`` is a logical stream
name, ``type`` an event type, ``group`` the service's consumer group, ``error`` an exception class.

Latency definitions (all in seconds):

- ``tm_handler_duration_seconds``: the handler call alone (decode and commit excluded).
- ``tm_event_hop_latency_seconds``: ``now_ns - input.ts_init_ns`` at commit, where ``ts_init_ns``
  is when the upstream hop created the input event. It is the time the event spent in the stream
  plus handling plus the commit: the cost of this hop. Summed along a chain it gives the
  end-to-end latency of a bar. We deliberately do not measure ``now - ts_event_ns`` (bar close to
  now): in replay and backfill ``ts_event_ns`` is historical market time, so that difference is
  days or years and says nothing about the mesh. Producer and consumer clocks may differ across
  hosts; a negative difference (clock skew) is recorded as 0.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from tm_common.bus.observer import ConsumerObserver
from tm_common.bus.protocol import Delivery, WriterSuperseded
from tm_common.events.base import Envelope

__all__ = ["CONTENT_TYPE_LATEST", "LATENCY_BUCKETS_S", "PrometheusObserver", "ServiceMetrics"]

# 100 µs .. 60 s: a Redis hop is ~0.3 ms, a model inference ~0.2-10 ms, a backlog seconds.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)


class ServiceMetrics:
    """The metrics every service exposes. Services add their own on ``self.registry``.

    ``process_collectors``: also export ``process_*`` (CPU, memory, fds) and ``python_*`` (GC,
    version) series, as the default registry would.
    """

    def __init__(self, service: str, version: str, *, registry: CollectorRegistry | None = None,
                 process_collectors: bool = True) -> None:
        self.service, self.version = service, version
        r = self.registry = registry or CollectorRegistry(auto_describe=True)
        if process_collectors:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        sl = ("stream", "type")
        self.consumed = Counter("tm_events_consumed_total",
                                "Input events handled and committed.", sl, registry=r)
        self.published = Counter("tm_events_published_total",
                                 "Output events committed to a stream.", sl, registry=r)
        self.dead_lettered = Counter("tm_events_dead_lettered_total",
                                     "Input events moved to the dead-letter stream.", sl, registry=r)
        self.handler_failures = Counter(
            "tm_handler_failures_total",
            "Handler attempts that raised (retried or dead-lettered later).",
            ("stream", "type", "error"), registry=r)
        self.transport_errors = Counter(
            "tm_transport_errors_total",
            "Transport failures (e.g. Redis unreachable) seen by consumers and pollers.",
            ("error",), registry=r)
        self.handler_seconds = Histogram(
            "tm_handler_duration_seconds", "Time in the handler per input event, seconds.",
            sl, buckets=LATENCY_BUCKETS_S, registry=r)
        self.hop_latency_seconds = Histogram(
            "tm_event_hop_latency_seconds",
            "From the input's ts_init_ns (created upstream) to this hop's commit, seconds.",
            sl, buckets=LATENCY_BUCKETS_S, registry=r)
        self.consumer_lag = Gauge("tm_consumer_lag",
                                  "Entries in the stream not yet delivered to the group.",
                                  ("stream", "group"), registry=r)
        self.consumer_pending = Gauge("tm_consumer_pending",
                                      "Entries delivered to the group and not yet acked.",
                                      ("stream", "group"), registry=r)
        self.task_restarts = Counter(
            "tm_task_restarts_total",
            "Consumer loops and background tasks restarted after an unexpected error.",
            ("task",), registry=r)
        self.writer_generation = Gauge(
            "tm_consumer_writer_generation",
            "The writer generation this instance took for its group at start (one writer per "
            "consumer group: a newer instance supersedes it).", ("group",), registry=r)
        self.writer_superseded = Gauge(
            "tm_consumer_writer_superseded",
            "1 when a newer instance of the group took over and this one stopped consuming.",
            ("group",), registry=r)
        self.signature_refused = Counter(
            "tm_consumer_signature_refused_total",
            "Entries of a signed stream dead-lettered before handling because they carried no "
            "signature (reason unsigned) or a wrong one (reason bad signature).",
            ("stream", "group", "reason"), registry=r)
        self.ready = Gauge("tm_service_ready", "1 when the last /readyz check passed.", registry=r)
        self.build_info = Gauge("tm_build_info", "Always 1; the labels say what is running.",
                                ("service", "version"), registry=r)
        self.build_info.labels(service=service, version=version).set(1)
        self.observer = PrometheusObserver(self)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


class PrometheusObserver(ConsumerObserver):
    """Consumer-loop hooks → :class:`ServiceMetrics`. Also remembers the last event handled
    (``last_handled``: stream, envelope, commit time ns) for ``/status``."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.m = metrics
        self.last_handled: tuple[str, Envelope, int] | None = None

    def handled(self, stream: str, event: Envelope, handler_secs: float, now_ns: int) -> None:
        t = event.type
        self.m.consumed.labels(stream, t).inc()
        self.m.handler_seconds.labels(stream, t).observe(max(handler_secs, 0.0))
        self.m.hop_latency_seconds.labels(stream, t).observe(
            max(now_ns - event.ts_init_ns, 0) / 1e9)
        self.last_handled = (stream, event, now_ns)

    def published(self, stream: str, event: Envelope) -> None:
        self.m.published.labels(stream, event.type).inc()

    def dead_lettered(self, stream: str, event_type: str, reason: str) -> None:
        self.m.dead_lettered.labels(stream, event_type).inc()

    def signature_refused(self, stream: str, group: str, reason: str) -> None:
        self.m.signature_refused.labels(stream, group, reason).inc()

    def failed(self, delivery: Delivery, error: BaseException, attempt: int) -> None:
        self.m.handler_failures.labels(delivery.stream, _event_type(delivery),
                                       type(error).__name__).inc()

    def transport_error(self, error: BaseException) -> None:
        self.m.transport_errors.labels(type(error).__name__).inc()

    def generation(self, group: str, generation: int) -> None:
        self.m.writer_generation.labels(group).set(generation)
        self.m.writer_superseded.labels(group).set(0)

    def superseded(self, group: str, error: WriterSuperseded) -> None:
        self.m.writer_superseded.labels(group).set(1)


def _event_type(d: Delivery) -> str:
    """The ``type`` field of a raw entry ("?" if absent); failed() runs only after the entry
    decoded, so this is a registered type name and the label stays bounded."""
    v = d.fields.get("type", d.fields.get(b"type", "?"))
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)
