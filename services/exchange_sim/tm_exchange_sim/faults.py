"""Fault injection with a seeded RNG, so a faulty run is reproducible.

Per request to ``/v5/*`` and the Deribit path, in this order: added latency; a forced
rate-limit answer (retCode 10006 with the limit headers); an HTTP 5xx (the request is not
processed); a timeout (the request *is* processed, then the response is held for
``timeout_s``, past the client's timeout: the nastiest case for idempotency). WebSocket pushes
drop the connection with ``ws_drop_prob``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class FaultConfig(BaseModel):
    # No NaN/Infinity: ``{"latency_ms": Infinity}`` (accepted by Python's JSON parser) would hold
    # every later request forever (found by the API fuzzer).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rate_limit_prob: float = Field(default=0.0, ge=0, le=1)
    http_5xx_prob: float = Field(default=0.0, ge=0, le=1)
    http_5xx_status: int = Field(default=503, ge=500, le=599)
    timeout_prob: float = Field(default=0.0, ge=0, le=1)
    timeout_s: float = Field(default=15.0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)
    ws_drop_prob: float = Field(default=0.0, ge=0, le=1)
    rate_limit_per_s: int = Field(default=20, ge=1)
    paths: list[str] | None = Field(default=None, description="only these paths; None = all")


@dataclass(frozen=True, slots=True)
class FaultDecision:
    latency_s: float = 0.0
    rate_limit: bool = False
    http_5xx: int | None = None
    hold_s: float = 0.0

    @property
    def any(self) -> bool:
        return bool(self.latency_s or self.rate_limit or self.http_5xx or self.hold_s)


class FaultInjector:
    def __init__(self, config: FaultConfig, seed: int = 0) -> None:
        self.seed = seed
        self.config = config
        self._rng = random.Random(seed)
        self.injected: dict[str, int] = {}

    def configure(self, config: FaultConfig, reseed: int | None = None) -> None:
        self.config = config
        if reseed is not None:
            self.seed = reseed
            self._rng = random.Random(reseed)

    def decide(self, path: str) -> FaultDecision:
        cfg = self.config
        if cfg.paths is not None and path not in cfg.paths:
            return FaultDecision()
        # Draw every number each time, so one probability change does not shift the others.
        r_limit, r_5xx, r_timeout = self._rng.random(), self._rng.random(), self._rng.random()
        decision = FaultDecision(
            latency_s=cfg.latency_ms / 1000.0,
            rate_limit=r_limit < cfg.rate_limit_prob,
            http_5xx=cfg.http_5xx_status if r_5xx < cfg.http_5xx_prob else None,
            hold_s=cfg.timeout_s if r_timeout < cfg.timeout_prob else 0.0)
        for name, hit in (("rate_limit", decision.rate_limit),
                          ("http_5xx", decision.http_5xx is not None),
                          ("timeout", decision.hold_s > 0)):
            if hit:
                self.injected[name] = self.injected.get(name, 0) + 1
        return decision

    def drop_ws(self) -> bool:
        hit = self._rng.random() < self.config.ws_drop_prob
        if hit:
            self.injected["ws_drop"] = self.injected.get("ws_drop", 0) + 1
        return hit


class RateLimiter:
    """Fixed one-second windows per (api key, path), as Bybit's per-UID endpoint limits."""

    def __init__(self, limit_per_s: int) -> None:
        self.limit = limit_per_s
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}

    def hit(self, key: str, path: str, now_ms: int) -> tuple[bool, int, int]:
        """Count one request; return (allowed, remaining, reset_timestamp_ms)."""
        window = now_ms - now_ms % 1000
        start, count = self._windows.get((key, path), (window, 0))
        if start != window:
            start, count = window, 0
        count += 1
        self._windows[(key, path)] = (start, count)
        return count <= self.limit, max(self.limit - count, 0), start + 1000

    def headers(self, remaining: int, reset_ms: int) -> dict[str, str]:
        return {"X-Bapi-Limit-Status": str(remaining), "X-Bapi-Limit": str(self.limit),
                "X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}
