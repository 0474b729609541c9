"""Venue errors, grouped by what the executor does about them.

- transient: retry (after the rate-limit reset, or with backoff); the request may or may not
  have been processed (``ambiguous``), so the order is looked up before any new placement;
- rejection: the venue refused the request for good → an ``OrderRejected`` event;
- fatal: credentials or permissions are wrong → ``OrderRejected`` and the service not ready.

:class:`~tm_common.errors.VenueError` (the root: endpoint, retCode, HTTP status, ambiguity,
retry-after) is shared with ingest; the three kinds below are the executor's classification.

Messages are scrubbed at construction: no secret value, no request parameters (pybit puts the
request body into its exception text), no signature headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from tm_common.errors import TransientError
from tm_common.errors import VenueError as VenueError  # re-exported: the executor's root

DUPLICATE_ORDER_LINK_ID = 110072
ORDER_NOT_FOUND = 110001
POSITION_MODE_NOT_MODIFIED = 110025
LEVERAGE_NOT_MODIFIED = 110043
STOP_NOT_MODIFIED = 34040            # trading-stop: the same stop loss again
RATE_LIMITED = 10006


class ErrorClass(StrEnum):
    TRANSIENT = "transient"
    REJECTION = "rejection"
    FATAL = "fatal"


# 10000 server timeout, 10002 timestamp/recv_window, 10006 per-UID rate limit, 10016 server
# error/restarting, 10018 per-IP rate limit, 10429 system frequency protection, 30034/30035/
# 130035/130150 are pybit's own retry codes (busy order system).
TRANSIENT_CODES = frozenset({10000, 10002, 10006, 10016, 10018, 10019, 10429, 30034, 30035,
                             130035, 130150, 170146})
# 10003 invalid key, 10004 bad signature, 10005 permission denied, 10007 authentication failed,
# 10008/10009 user or IP banned, 10010 IP not bound to the key, 10027 trading banned,
# 10029 symbol not in the key's whitelist, 33004 key expired.
FATAL_CODES = frozenset({10003, 10004, 10005, 10007, 10008, 10009, 10010, 10027, 10029, 33004})


def classify_ret_code(code: int) -> ErrorClass:
    """A Bybit ``retCode`` (non-zero) → what to do. Unknown codes are rejections: a non-zero
    retCode means the venue answered and did not do what was asked."""
    if code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    if code in FATAL_CODES:
        return ErrorClass.FATAL
    return ErrorClass.REJECTION


def classify_http_status(status: int) -> ErrorClass:
    """An HTTP status other than 200. 5xx, 403 (Bybit's IP rate limit), 408, 409 (pybit: body
    not JSON, e.g. a proxy page), 429 and 400 (pybit: retries exhausted) are transient; 401 is
    fatal; any other 4xx (wrong URL, 404) is a rejection."""
    if status >= 500 or status in (400, 403, 408, 409, 425, 429):
        return ErrorClass.TRANSIENT
    if status == 401:
        return ErrorClass.FATAL
    return ErrorClass.REJECTION


class VenueTransient(VenueError, TransientError):
    kind = ErrorClass.TRANSIENT


class VenueRejected(VenueError):
    kind = ErrorClass.REJECTION


class VenueFatal(VenueError):
    kind = ErrorClass.FATAL


ERROR_TYPES = {ErrorClass.TRANSIENT: VenueTransient, ErrorClass.REJECTION: VenueRejected,
               ErrorClass.FATAL: VenueFatal}


# ---- scrubbing --------------------------------------------------------------------------
_HEADER_RE = re.compile(r"(x-bapi-(?:api-key|sign|signature)[\"']?\s*[:=]\s*[\"']?)[^\"',\s}]+",
                        re.IGNORECASE)
_KV_RE = re.compile(r"((?:api_?key|api_?secret|secret|sign|signature|token|password)"
                    r"[\"']?\s*[:=]\s*[\"']?)[^\"'&,\s}]+", re.IGNORECASE)
_QUERY_RE = re.compile(r"\?[^\s'\"]+")
_REQUEST_TAIL_RE = re.compile(r"\.?\s*Request\s*(?:→|->).*", re.DOTALL)
MAX_MESSAGE_LEN = 300
REDACTED = "***"


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without secret values, signature/key headers, ``key=value`` credentials, URL
    query strings and pybit's ``Request → <params>`` tail; at most 300 characters."""
    out = _REQUEST_TAIL_RE.sub("", str(text))
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        out = out.replace(s, REDACTED)
    out = _HEADER_RE.sub(lambda m: m.group(1) + REDACTED, out)
    out = _KV_RE.sub(lambda m: m.group(1) + REDACTED, out)
    out = _QUERY_RE.sub("?" + REDACTED, out)
    out = " ".join(out.split())
    return out if len(out) <= MAX_MESSAGE_LEN else out[:MAX_MESSAGE_LEN - 1] + "…"
