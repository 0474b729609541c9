"""Hooks the consumer loop calls so that metrics and logs stay out of the delivery logic."""

from __future__ import annotations

from tm_common.bus.protocol import Delivery, WriterSuperseded
from tm_common.events.base import Envelope


class ConsumerObserver:
    """No-op base; :mod:`tm_common.metrics` provides the Prometheus implementation."""

    def handled(self, stream: str, event: Envelope, handler_secs: float, now_ns: int) -> None:
        """An input was handled and committed."""

    def published(self, stream: str, event: Envelope) -> None:
        """An output was committed to ``stream``."""

    def dead_lettered(self, stream: str, event_type: str, reason: str) -> None:
        """An input went to ``<stream>.dlq``."""

    def signature_refused(self, stream: str, group: str, reason: str) -> None:
        """An entry of a signed stream was unsigned or wrongly signed (``reason``: ``unsigned``
        or ``bad signature``); it was dead-lettered without being decoded."""

    def failed(self, delivery: Delivery, error: BaseException, attempt: int) -> None:
        """A handling attempt raised; it will be retried or dead-lettered."""

    def transport_error(self, error: BaseException) -> None:
        """The transport failed (e.g. Redis down); the loop backs off and retries."""

    def generation(self, group: str, generation: int) -> None:
        """The consumer took writer generation ``generation`` of ``group`` (at start)."""

    def superseded(self, group: str, error: WriterSuperseded) -> None:
        """A newer instance of ``group`` took over; this consumer stopped consuming for good."""
