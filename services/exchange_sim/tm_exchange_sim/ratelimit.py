"""Bybit's request limits, on the host clock (pybit sleeps until the reset header by its own).

- **Per API key and endpoint** (Bybit's "API Rate Limit Table", UTA, linear): a rolling
  one-second window per (key, path) with the limit of :data:`BYBIT_LIMITS_PER_S`; a flat
  ``override_per_s`` replaces the table (``TM_SIM_RATE_LIMIT_PER_S``, or ``rate_limit_per_s``
  on ``POST /sim/faults``: tests and replays that must never be limited set a large one).
  Every signed answer carries ``X-Bapi-Limit`` (the endpoint's limit), ``X-Bapi-Limit-Status``
  (requests left in the window) and ``X-Bapi-Limit-Reset-Timestamp`` (ms: now, or when the
  window frees a request once the limit is hit); over the limit the answer is retCode 10006.
- **Per IP** (Bybit: 600 requests in a 5-second window; over it, HTTP 403 "access too frequent"
  and a ban of at least 10 minutes): off unless ``ip_limit_per_5s`` is set, since tests and the
  mesh share one loopback address. A ban can also be imposed at once (``ip_ban_s`` on
  ``POST /sim/faults``: every caller, the 403 fault mode).
"""

from __future__ import annotations

from collections import deque

BYBIT_LIMITS_PER_S: dict[str, int] = {
    "/v5/order/create": 10,
    "/v5/order/amend": 10,
    "/v5/order/cancel": 10,
    "/v5/order/cancel-all": 10,
    "/v5/order/realtime": 50,
    "/v5/order/history": 50,
    "/v5/execution/list": 50,
    "/v5/position/list": 50,
    "/v5/position/closed-pnl": 50,
    "/v5/position/set-leverage": 10,
    "/v5/position/switch-mode": 10,
    "/v5/position/trading-stop": 10,
    "/v5/account/wallet-balance": 50,
}
DEFAULT_LIMIT_PER_S = 10        # a signed path missing from the table (none today)
WINDOW_MS = 1000
IP_WINDOW_MS = 5000


class RateLimiter:
    """Rolling one-second windows per (api key, path)."""

    def __init__(self, override_per_s: int | None = None) -> None:
        self.override_per_s = override_per_s
        self._hits: dict[tuple[str, str], deque[int]] = {}

    def limit(self, path: str) -> int:
        if self.override_per_s is not None:
            return self.override_per_s
        return BYBIT_LIMITS_PER_S.get(path, DEFAULT_LIMIT_PER_S)

    def hit(self, key: str, path: str, now_ms: int) -> tuple[bool, dict[str, str]]:
        """Count one request at ``now_ms``; ``(allowed, Bybit's limit headers)``. A refused
        request is not counted (it used no capacity)."""
        limit = self.limit(path)
        hits = self._hits.setdefault((key, path), deque())
        while hits and hits[0] <= now_ms - WINDOW_MS:
            hits.popleft()
        allowed = len(hits) < limit
        if allowed:
            hits.append(now_ms)
        reset = now_ms if allowed else hits[0] + WINDOW_MS
        return allowed, self.headers(limit, limit - len(hits), reset)

    @staticmethod
    def headers(limit: int, remaining: int, reset_ms: int) -> dict[str, str]:
        return {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": str(max(remaining, 0)),
                "X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}


class IpGuard:
    """Bybit's IP limit and ban (see the module docstring); times are host ms."""

    def __init__(self) -> None:
        self.banned_until: dict[str, int] = {}
        self.everyone_until = 0
        self._hits: dict[str, deque[int]] = {}

    def ban_everyone(self, now_ms: int, ban_s: float) -> None:
        """The 403 fault mode: every caller is banned for ``ban_s`` (0 lifts every ban)."""
        self.everyone_until = now_ms + int(ban_s * 1000)
        if ban_s <= 0:
            self.banned_until.clear()

    def banned(self, ip: str, now_ms: int, limit_per_5s: int | None, ban_s: float) -> int | None:
        """Count a request from ``ip``; the ban's end (ms) when it is refused, else ``None``."""
        until = max(self.everyone_until, self.banned_until.get(ip, 0))
        if until > now_ms:
            return until
        if limit_per_5s is None:
            return None
        hits = self._hits.setdefault(ip, deque())
        while hits and hits[0] <= now_ms - IP_WINDOW_MS:
            hits.popleft()
        hits.append(now_ms)
        if len(hits) > limit_per_5s:
            hits.clear()
            self.banned_until[ip] = now_ms + int(ban_s * 1000)
            return self.banned_until[ip]
        return None
