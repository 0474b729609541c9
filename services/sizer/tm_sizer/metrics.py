"""Prometheus metrics of the sizer (``tm_sizer_*``), on the service's registry.

Label values are bounded: tier (5), instrument (configured symbols), cause/reason (fixed words).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# 1 µs .. 10 ms: a decision (Kelly + numpy actor + cascade) is ~20-60 µs.
DECISION_BUCKETS_S = (1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2)
BREAKER_CODE = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}


class SizerMetrics:
    """``registry`` None → a private registry (tests build many handlers in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.decisions = Counter("tm_sizer_decisions_total", "Sizing decisions by cascade tier.",
                                 ["tier", "instrument"], registry=r)
        self.decision_seconds = Histogram("tm_sizer_decision_seconds", "Time to size one bar "
                                          "(Kelly, RL actor, cascade), seconds.", ["tier"],
                                          buckets=DECISION_BUCKETS_S, registry=r)
        self.target = Gauge("tm_sizer_target_fraction", "Last target fraction of equity.",
                            ["instrument"], registry=r)
        self.stale = Counter("tm_sizer_regime_stale_total", "Decisions made with the last known "
                             "regime because this bar's did not arrive, by cause.",
                             ["instrument", "cause"], registry=r)
        self.dropped = Counter("tm_sizer_inputs_dropped_total", "Inputs not used (late, no signal "
                               "for a bar, unknown instrument).", ["reason"], registry=r)
        self.flushes = Counter("tm_sizer_join_flush_requests_total", "Join-timeout flush commands "
                               "published by the live timer.", registry=r)
        self.pending = Gauge("tm_sizer_pending_joins", "Joins waiting for an input.", registry=r)
        self.policy_info = Gauge("tm_sizer_policy_info", "1 for the RL policy version loaded "
                                 "(version=\"none\" without one); usable=0 if its gate failed.",
                                 ["version", "usable"], registry=r)
        self.reloads = Counter("tm_sizer_policy_reloads_total", "RL policy (re)loads by outcome.",
                               ["result"], registry=r)
        self.breaker = Gauge("tm_sizer_breaker_state", "Breaker state as the sizer knows it: "
                             "0 CLOSED, 1 HALF_OPEN, 2 OPEN.", registry=r)
        self.db_backlog = Gauge("tm_sizer_db_backlog", "Target row batches waiting for the "
                                "database.", registry=r)
        self.set_policy("", False)

    def set_policy(self, version: str, usable: bool) -> None:
        self.policy_info.clear()
        self.policy_info.labels(version or "none", "1" if usable else "0").set(1)

    def note(self, instrument: str, note: str) -> None:
        """Count an engine note (``stale:<cause>``, ``late:<what>``, ``dropped:<why>...``)."""
        kind, _, rest = note.partition(":")
        if kind == "stale":
            self.stale.labels(instrument, rest or "unknown").inc()
        elif kind == "late":
            self.dropped.labels(f"late_{rest}").inc()
        elif kind == "dropped":
            self.dropped.labels(rest.split(":")[0]).inc()
