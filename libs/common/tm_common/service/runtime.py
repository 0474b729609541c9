"""What a running service is: its settings, bus, consumers, metrics and readiness checks.

:class:`ServiceRuntime` owns the consumer tasks (started by the app's lifespan, drained on
shutdown), optional background tasks, a poller that publishes consumer lag/pending to metrics and
``/status``, a poller that evaluates readiness on its own schedule (so ``tm_service_ready`` is true
whether or not anybody calls ``/readyz``), and the answers of ``/readyz`` and ``/status``. Build its parts with
:mod:`tm_common.service.wiring` (``make_bus``, ``make_consumer``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from tm_common.bus.consumer import Consumer
from tm_common.bus.observer import ConsumerObserver
from tm_common.bus.protocol import Bus, TransportError
from tm_common.events.base import Envelope
from tm_common.logging import Redactor, settings_secrets
from tm_common.metrics import ServiceMetrics

log = structlog.get_logger("tm.service")

ReadyCheck = Callable[[], bool | Awaitable[bool]]
Background = Callable[[asyncio.Event], Awaitable[None]]


class ServiceRuntime:
    """A service's moving parts; :func:`tm_common.service.app.create_app` serves it over HTTP.

    ``consumers``: started as tasks by :meth:`start`, stopped gracefully by :meth:`stop`.
    ``ready_checks``: name → callable returning ``bool`` (or an awaitable of one); ``/readyz`` is
    200 only when Redis answers and every check returns True within ``ready_timeout_s``.
    ``status_extra``: callable returning a JSON-able dict merged into ``/status`` under
    ``"extra"`` (secrets redacted). ``lag_poll_interval_s``: how often lag/pending are refreshed.
    ``ready_poll_interval_s``: how often the checks run on their own to refresh the
    ``tm_service_ready`` gauge (every ``/readyz`` refreshes it too); a scrape therefore sees a value
    at most this old (default 5 s, below any scrape interval the deploy files use).
    ``drain_timeout_s``: how long :meth:`stop` waits for in-flight entries before cancelling
    (a cancelled entry is not acked and is redelivered).
    ``background``: name → ``async fn(stop_event)`` for work that is not a consumer (ingest's
    websocket, a reconciliation loop): started with the consumers, restarted with backoff if it
    raises, and expected to return soon after ``stop_event`` is set.
    """

    def __init__(self, settings: Any, bus: Bus, consumers: Sequence[Consumer] = (), *,
                 ready_checks: Mapping[str, ReadyCheck] | None = None,
                 status_extra: Callable[[], Mapping[str, Any]] | None = None,
                 metrics: ServiceMetrics | None = None, lag_poll_interval_s: float = 5.0,
                 drain_timeout_s: float = 20.0, ready_timeout_s: float = 2.0,
                 background: Mapping[str, Background] | None = None,
                 ready_poll_interval_s: float = 5.0) -> None:
        if ready_poll_interval_s <= 0:
            raise ValueError(f"ready_poll_interval_s must be > 0, got {ready_poll_interval_s}")
        self.settings, self.bus, self.consumers = settings, bus, list(consumers)
        self.background = dict(background or {})
        self.ready_checks = dict(ready_checks or {})
        self.status_extra = status_extra
        self.metrics = metrics or ServiceMetrics(settings.service_name, settings.version)
        for c in self.consumers:
            if type(c.obs) is ConsumerObserver:  # the no-op default: report to our metrics
                c.obs = self.metrics.observer
        self.redactor = Redactor(settings_secrets(settings))
        self.lag_poll_interval_s, self.drain_timeout_s = lag_poll_interval_s, drain_timeout_s
        self.ready_timeout_s, self.ready_poll_interval_s = ready_timeout_s, ready_poll_interval_s
        self.lag: dict[str, dict[str, int]] = {}     # stream -> {"lag": n, "pending": n}
        self.lag_error: str | None = None
        self.started_at_ns: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._ready_poller: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None      # created in start(), on the running loop

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start one task per consumer, the lag poller and the readiness poller. Returns at once: a consumer that
        cannot reach Redis keeps retrying in its task while ``/readyz`` says so."""
        self.started_at_ns = time.time_ns()
        stop = self._stop = asyncio.Event()
        self._tasks = []
        for c in self.consumers:
            self._tasks.append(asyncio.create_task(
                self._supervise(f"consumer:{c.group}", c.run, functools.partial(_reset_groups, c)),
                name=f"consumer:{c.group}"))
        for name, fn in self.background.items():
            self._tasks.append(asyncio.create_task(
                self._supervise(name, functools.partial(fn, stop), None), name=name))
        self._poller = asyncio.create_task(self._poll_lag(), name="lag-poller")
        self._ready_poller = asyncio.create_task(self._poll_ready(), name="ready-poller")
        log.info("service.started", group=self.settings.group, consumer=self.settings.consumer,
                 streams=[s for c in self.consumers for s in c.streams])

    async def stop(self) -> None:
        """Graceful drain: stop reading, finish the entry in hand, then release the bus."""
        if self._stop is not None:
            self._stop.set()
        for c in self.consumers:
            c.stop()
        # Tasks are asked to stop, not cancelled: redis-py's asyncio client can swallow a
        # CancelledError that lands inside a command (seen with redis 8.1 on Python 3.11), which
        # would leave a cancelled task running and the shutdown waiting for it forever.
        pending = [t for t in [*self._tasks, self._poller, self._ready_poller] if t is not None]
        _, late = await asyncio.wait(pending, timeout=self.drain_timeout_s) if pending else ((), ())
        for t in late:
            log.warning("service.drain_timeout", task=t.get_name(), secs=self.drain_timeout_s)
            t.cancel()      # an entry in hand is not acked: it is redelivered after restart
        if late:
            _, stuck = await asyncio.wait(late, timeout=2.0)
            for t in stuck:
                log.error("service.task_stuck", task=t.get_name())
        try:
            await self.bus.close()
        except Exception as e:  # noqa: BLE001 - closing a dead connection must not fail shutdown
            log.info("service.bus_close_failed", error=str(e))
        log.info("service.stopped", handled=self.handled_count,
                 dead_lettered=sum(c.dead_letter_count for c in self.consumers))

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]],
                         on_crash: Callable[[], None] | None) -> None:
        """Run ``run()`` until stopped; after an error it did not handle, log, back off
        (0.1 s doubling to 5 s; reset after a minute of health) and run it again."""
        assert self._stop is not None
        backoff = 0.1
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                await run()
                if not self._stop.is_set():
                    log.info("service.task_finished", task=name)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.metrics.task_restarts.labels(name).inc()
                log.exception("service.task_crashed", task=name,
                              error=f"{type(e).__name__}: {e}")
                if on_crash is not None:
                    on_crash()
                backoff = 0.1 if time.monotonic() - t0 > 60 else backoff
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)

    async def _poll_lag(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await self.refresh_lag()
            except Exception as e:  # noqa: BLE001 - reported in /status, retried next tick
                self.lag_error = f"{type(e).__name__}: {e}"
                if isinstance(e, TransportError):
                    self.metrics.transport_errors.labels(type(e).__name__).inc()
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.lag_poll_interval_s)
            except TimeoutError:
                pass

    async def _poll_ready(self) -> None:
        """Evaluate readiness now and every ``ready_poll_interval_s`` until stopped: the gauge
        must not wait for a ``/readyz`` call (nobody may be calling it, and Prometheus alerts on
        it). A check that raises is "not ready" (:meth:`_run_check`); anything else that fails
        here is logged and retried on the next tick."""
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await self.check_ready()
            except Exception as e:  # noqa: BLE001 - the poller must outlive a bad tick
                self.metrics.ready.set(0)
                log.warning("service.ready_poll_failed", error=f"{type(e).__name__}: {e}")
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.ready_poll_interval_s)
            except TimeoutError:
                pass

    async def refresh_lag(self) -> None:
        """Read lag and pending of this service's group on each consumed stream."""
        for c in self.consumers:
            for s in c.streams:
                info = next((g for g in await self.bus.group_info(s) if g["name"] == c.group), None)
                lag, pending = (int(info["lag"]), int(info["pending"])) if info else (0, 0)
                self.lag[s] = {"lag": lag, "pending": pending}
                self.metrics.consumer_lag.labels(s, c.group).set(lag)
                self.metrics.consumer_pending.labels(s, c.group).set(pending)
        self.lag_error = None

    # -- readiness and status --------------------------------------------------------------
    async def check_ready(self) -> tuple[bool, dict[str, str]]:
        """(ready, name → "ok" or why not). Checks: ``redis`` (PING), ``tasks`` (every consumer
        and background task still running), ``writer`` (for a stateful consumer: no newer
        instance of its group took over; once one did, this instance has stopped consuming and
        stays not ready), then each ``ready_checks`` entry."""
        results = {"redis": await self._run_check(self.bus.ping)}
        dead = [t.get_name() for t in self._tasks if t.done() and not _finished_ok(t)]
        results["tasks"] = "ok" if not dead else f"not running: {', '.join(dead)}"
        fenced = [c for c in self.consumers if c.generation_key is not None]
        if fenced:
            gone = [str(c.superseded) for c in fenced if c.superseded is not None]
            results["writer"] = "ok" if not gone else "superseded: " + "; ".join(gone)
        for name, fn in self.ready_checks.items():
            results[name] = await self._run_check(fn)
        ok = all(v == "ok" for v in results.values())
        self.metrics.ready.set(1 if ok else 0)
        return ok, results

    async def _run_check(self, fn: ReadyCheck) -> str:
        try:
            r = fn()
            if inspect.isawaitable(r):
                r = await asyncio.wait_for(r, timeout=self.ready_timeout_s)
        except TimeoutError:
            return f"timed out after {self.ready_timeout_s} s"
        except Exception as e:  # noqa: BLE001 - a failing check means "not ready", with why
            return self.redactor.redact_text(f"error: {type(e).__name__}: {e}")
        return "ok" if r else "not ready"

    @property
    def handled_count(self) -> int:
        return sum(c.handled_count for c in self.consumers)

    def status(self) -> dict[str, Any]:
        """The ``/status`` document (JSON-able; secrets redacted)."""
        s = self.settings
        last = None
        obs = self.metrics.observer
        if obs.last_handled is not None:
            stream, ev, at_ns = obs.last_handled
            last = _event_summary(ev, stream=stream, handled_at_ns=at_ns)
        else:
            for c in self.consumers:
                if c.last_event is not None:
                    last = _event_summary(c.last_event)
        doc: dict[str, Any] = {
            "service": s.service_name, "version": s.version, "consumer": s.consumer,
            "group": s.group, "namespace": s.namespace,
            "started_at_ns": self.started_at_ns,
            "streams_consumed": [st for c in self.consumers for st in c.streams],
            "handled": self.handled_count,
            "dead_lettered": sum(c.dead_letter_count for c in self.consumers),
            "last_event": last,
            "streams": {k: dict(v) for k, v in self.lag.items()},
            "lag_error": self.lag_error,
            "writer": {c.group: {"generation": c.generation,
                                 "superseded": None if c.superseded is None else str(c.superseded)}
                       for c in self.consumers if c.generation_key is not None},
            # the hot path's profile: ns per stage (tm_common/bus/stages.py)
            "stages": {c.group: c.stages.as_dict() for c in self.consumers},
        }
        if self.status_extra is not None:
            try:
                doc["extra"] = dict(self.status_extra())
            except Exception as e:  # noqa: BLE001 - /status must answer even if extra fails
                doc["extra"] = {"error": f"{type(e).__name__}: {e}"}
        redacted: dict[str, Any] = self.redactor.redact(doc)
        return redacted


def _reset_groups(c: Consumer) -> None:
    # E.g. NOGROUP after Redis restarted without its data: Consumer.start() creates the groups
    # once (a private flag), so clear the flag to have them re-created on the next run.
    c._started = False


def _finished_ok(t: asyncio.Task[None]) -> bool:
    """A background job that returned normally is done, not dead; a consumer never is."""
    return not t.get_name().startswith("consumer:") and not t.cancelled() and t.exception() is None


def _event_summary(ev: Envelope, *, stream: str | None = None,
                   handled_at_ns: int | None = None) -> dict[str, Any]:
    return {"stream": stream, "type": ev.type, "event_id": ev.event_id,
            "correlation_id": ev.correlation_id, "causation_id": ev.causation_id,
            "ts_event_ns": ev.ts_event_ns, "ts_init_ns": ev.ts_init_ns,
            "handled_at_ns": handled_at_ns}
