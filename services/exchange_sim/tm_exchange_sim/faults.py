"""Fault injection with a seeded RNG, so a faulty run is reproducible.

Per request to ``/v5/*`` and the Deribit path, in this order: added latency; a forced
rate-limit answer (retCode 10006 with the limit headers); an HTTP 5xx (the request is not
processed); a timeout (the request *is* processed, then the response is held for
``timeout_s``, past the client's timeout: the nastiest case for idempotency). WebSocket pushes
drop the connection with ``ws_drop_prob``; ``ws_refuse_subscribe`` refuses every subscribe and
``ws_mute`` makes every connection half-open (nothing sent, nothing closed). The per-endpoint rate limits and the IP limit and
ban (HTTP 403) are in :mod:`tm_exchange_sim.ratelimit`; their settings live here, so that
``POST /sim/faults`` changes them too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

MAX_BAN_S = 365 * 24 * 3600.0


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
    ws_refuse_subscribe: bool = Field(default=False, description="answer every WebSocket "
                                      "subscribe with success: false (as Bybit does for a bad "
                                      "topic or an overloaded server)")
    ws_mute: bool = Field(default=False, description="WebSocket connections go half-open: "
                          "no answer, no pong, no push, and no close")
    rate_limit_per_s: int | None = Field(default=None, ge=1, description="a flat limit per "
                                         "key and signed endpoint; None = Bybit's table")
    ip_limit_per_5s: int | None = Field(default=None, ge=1, description="requests per IP in "
                                        "5 s before a 403 ban (Bybit: 600); None = no limit")
    ip_ban_s: float = Field(default=600.0, ge=0, le=MAX_BAN_S, description="length of the 403 ban the IP "
                            "limit imposes (Bybit: at least 10 minutes)")
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
