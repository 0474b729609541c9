"""Reading the venue's answers: what makes one malformed, and what a failed call means.

- Answers are checked before pybit reads them (:func:`check_answer`, a response hook on its
  ``requests`` session): a 200 whose body is not a JSON object with an integer ``retCode`` (an
  HTML page from a proxy, truncated JSON, a list, a missing or mistyped field) is a
  :class:`MalformedAnswer`, translated to a transient, ambiguous :class:`VenueTransient`
  ("malformed answer: ..."), never a ``KeyError``/``AttributeError`` from pybit. Malformed
  ``result`` contents (``list`` not a list of objects, a record with a missing or mistyped field:
  :func:`result_rows`, :func:`parse_records`) are transient and ambiguous too.
- Errors are translated here (:func:`translate`, used with ``raise ... from``) into
  :mod:`tm_executor.domain.errors` types whose messages are scrubbed: no secret, no request
  parameters.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError

from tm_executor.domain.errors import (
    ERROR_TYPES,
    RATE_LIMITED,
    VenueError,
    VenueFatal,
    VenueTransient,
    classify_http_status,
    classify_ret_code,
    scrub,
)
from tm_executor.domain.orders import BadVenueRecord, VenueOrder


class MalformedAnswer(Exception):
    """A 200 answer that is not a Bybit V5 envelope; the message says what is wrong with it."""


def _snippet(text: str, n: int = 60) -> str:
    return " ".join(text[:n].split())


def check_answer(resp: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """``requests`` response hook: raise :class:`MalformedAnswer` for a 200 answer that pybit
    could not read safely (other statuses are pybit's ``FailedRequestError``)."""
    if resp.status_code != 200:
        return resp
    ctype = resp.headers.get("Content-Type", "?").split(";")[0]
    try:
        doc = json.loads(resp.content)
    except (ValueError, RecursionError) as e:       # UnicodeDecodeError is a ValueError
        raise MalformedAnswer(f"body is not JSON ({ctype}, {len(resp.content)} bytes: "
                              f"{_snippet(resp.content.decode('utf-8', 'replace'))!r}): "
                              f"{type(e).__name__}") from None
    if not isinstance(doc, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
                type(None): "null"}.get(type(doc), type(doc).__name__)
        raise MalformedAnswer(f"body is a JSON {kind}, not an object")
    if "retCode" not in doc:
        raise MalformedAnswer("no retCode in the answer")
    code = doc["retCode"]
    if isinstance(code, bool) or not isinstance(code, int):
        raise MalformedAnswer(f"retCode is not an integer: {_snippet(repr(code))}")
    if code != 0 and not isinstance(doc.get("retMsg"), str):
        raise MalformedAnswer(f"retCode {code} without a retMsg string")
    return resp


def translate(endpoint: str, exc: BaseException, secrets: list[str], *,
              now_ms: int | None = None, max_wait_s: float = 5.0) -> VenueError | None:
    """A pybit/requests exception → a scrubbed :class:`VenueError` (None: not a venue error)."""
    if isinstance(exc, MalformedAnswer):
        return VenueTransient(endpoint, scrub(f"malformed answer: {exc}", secrets), ambiguous=True)
    if isinstance(exc, InvalidRequestError):
        code = int(exc.status_code)
        retry_after = None
        if code == RATE_LIMITED:
            retry_after = _reset_wait_s(exc.resp_headers, now_ms, max_wait_s)
        return ERROR_TYPES[classify_ret_code(code)](
            endpoint, scrub(str(exc.message), secrets), ret_code=code, retry_after_s=retry_after)
    if isinstance(exc, FailedRequestError):
        status = int(exc.status_code)
        return ERROR_TYPES[classify_http_status(status)](
            endpoint, scrub(str(exc.message), secrets), http_status=status,
            ambiguous=status >= 500 or status in (400, 409))
    if isinstance(exc, requests.exceptions.RequestException):
        # A connect timeout never reached the venue; anything later may have been processed.
        ambiguous = not isinstance(exc, requests.exceptions.ConnectTimeout)
        return VenueTransient(endpoint, scrub(f"{type(exc).__name__}: {exc}", secrets),
                              ambiguous=ambiguous)
    if isinstance(exc, PermissionError):        # pybit: no key/secret configured
        return VenueFatal(endpoint, "no API credentials configured")
    return None


def _reset_wait_s(headers: Any, now_ms: int | None, max_wait_s: float) -> float | None:
    """Seconds until ``X-Bapi-Limit-Reset-Timestamp`` (ms), clamped to [0, max_wait_s]."""
    if not headers:
        return None
    raw = headers.get("X-Bapi-Limit-Reset-Timestamp")
    try:
        reset_ms = int(raw)
    except (TypeError, ValueError):
        return None
    now = time.time() * 1000 if now_ms is None else now_ms
    return min(max((reset_ms - now) / 1000, 0.0), max_wait_s)


def first_order(result: dict[str, Any]) -> VenueOrder | None:
    rows = result_rows("get_open_orders", result)
    return parse_records(VenueOrder.from_bybit, rows[:1], "get_open_orders")[0] if rows else None


def result_rows(endpoint: str, result: dict[str, Any]) -> list[dict]:
    """``result.list``: a list of objects, or a malformed answer (never silently empty: an
    unreadable position list must not read as "no positions")."""
    rows = result.get("list")
    if not isinstance(rows, list):
        raise VenueTransient(endpoint, "malformed answer: result.list is "
                             + ("missing" if rows is None else f"a {type(rows).__name__}"),
                             ambiguous=True)
    bad = [type(r).__name__ for r in rows if not isinstance(r, dict)]
    if bad:
        raise VenueTransient(endpoint, f"malformed answer: result.list has {len(bad)} item(s) "
                             f"that are not objects ({bad[0]})", ambiguous=True)
    return rows


def parse_records(fn, rows, endpoint: str) -> list:
    try:
        return [fn(r) for r in rows]
    except BadVenueRecord as e:
        raise VenueTransient(endpoint, f"malformed venue record: {e}", ambiguous=True) from e
    except (AttributeError, TypeError, ValueError) as e:    # e.g. a nested filter not an object
        raise VenueTransient(endpoint, f"malformed venue record: {type(e).__name__}: {e}",
                             ambiguous=True) from e
