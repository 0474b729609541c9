"""Structured logs: one JSON object per line, with ``service`` and the event context.

``configure_logging(settings)`` routes both structlog and the standard library (uvicorn, redis-py)
through one handler, so every line a service writes has the same shape::

    {"event": "example.echoed", "level": "info", "timestamp": "2026-11-21T22:14:19.123Z",
     "service": "signal", "correlation_id": "BTCUSDT:1700006400000", "instrument": "BTCUSDT"}

``correlation_id`` and ``instrument`` appear while they are bound in contextvars: the service base
binds them around every handler call (:func:`bound_event`), so a handler's own ``log.info(...)``
carries them without passing them along.

Secrets never reach the output: the :class:`Redactor` replaces the value of every key named like
``*secret*``, ``*api_key*``, ``*token*``, ``*password*`` and every occurrence of a ``SecretStr``
value from the settings (in messages, exception traces, nested dicts) with ``"***"``; likewise
the password of every connection URL in the settings, whether in its netloc
(``redis://user:pw@host``) or its query string (``?password=pw``, ``?sslpassword=``, ``?token=``:
any parameter named like a secret). Whatever the settings, a URL in any text has its netloc
password and secret-named query parameters replaced too (:func:`redact_url`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO
from urllib.parse import unquote, unquote_plus, urlsplit

import structlog
from pydantic import BaseModel, SecretBytes, SecretStr
from structlog.typing import EventDict, Processor

from tm_common.events.base import Envelope
from tm_common.settings import warn_unknown_env

REDACTED = "***"

# Matched against key names, case-insensitively. "apikey"/"api-key" are common spellings too.
SECRET_KEY_RE = re.compile(r"secret|api[_-]?key|token|password|passwd|authorization", re.IGNORECASE)

# A URL's netloc password (``scheme://user:PASSWORD@``) and a query parameter named like a secret
# (``?password=…``, ``&sslpassword=…``, ``&api_key=…``), wherever they occur in a text.
_USERINFO_PASSWORD_RE = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#@\s:]*:)"
                                   r"(?P<value>[^@\s/?#]+)(?=@)")
_QUERY_SECRET_RE = re.compile(r"(?P<head>[?&;][A-Za-z0-9_.\-]*"
                              r"(?:secret|api[_-]?key|token|password|passwd)"
                              r"[A-Za-z0-9_.\-]*=)(?P<value>[^&#;\s\"'<>]+)", re.IGNORECASE)


def redact_url(text: str) -> str:
    """``text`` with every URL's netloc password and secret-named query parameters replaced by
    ``***`` (``postgresql://tm:***@db/tm?sslmode=require&password=***``); the rest unchanged."""
    if "=" in text:
        text = _QUERY_SECRET_RE.sub(lambda m: m["head"] + REDACTED, text)
    if "://" in text and "@" in text:
        text = _USERINFO_PASSWORD_RE.sub(lambda m: m["head"] + REDACTED, text)
    return text


def url_secrets(url: str) -> list[str]:
    """The secrets a connection URL carries, as written and decoded: its netloc password and the
    value of each query parameter named like a secret (:data:`SECRET_KEY_RE`)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = [password, unquote(password)] if password else []
    for raw in parts.query.replace(";", "&").split("&"):
        key, sep, value = raw.partition("=")
        if sep and value and SECRET_KEY_RE.search(unquote_plus(key)):
            found += [value, unquote_plus(value)]
    return list(dict.fromkeys(found))


def settings_secrets(settings: BaseModel | None) -> list[str]:
    """Every non-empty ``SecretStr``/``SecretBytes`` value in ``settings`` (nested models too)."""
    out: list[str] = []

    def walk(model: BaseModel) -> None:
        for name in type(model).model_fields:
            v = getattr(model, name, None)
            if isinstance(v, (SecretStr, SecretBytes)):
                raw = v.get_secret_value()
                raw = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
                if raw:
                    out.append(raw)
            elif isinstance(v, BaseModel):
                walk(v)
            elif isinstance(v, str) and "://" in v:
                # a password inside a connection URL (redis://user:pw@host, ?password=pw)
                out.extend(url_secrets(v))

    if settings is not None:
        walk(settings)
    return out


class Redactor:
    """Replaces secrets in log events and in any JSON-able value (``/status`` uses it too).

    ``secrets``: literal values to hide wherever they occur in strings. Values under a key that
    matches :data:`SECRET_KEY_RE` are replaced whole; ``SecretStr`` objects become ``"***"``.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another one is replaced whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, value: Any, key: str | None = None) -> Any:
        """A copy of ``value`` with secrets replaced; containers are walked recursively."""
        if key is not None and SECRET_KEY_RE.search(key) and value is not None:
            return REDACTED
        if isinstance(value, (SecretStr, SecretBytes)):
            return REDACTED
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {self.redact_text(k) if isinstance(k, str) else k: self.redact(v, str(k))
                    for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.redact(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        # Anything else would be rendered by repr() after this processor: render and redact it
        # now, so that nothing reaches the renderer that the redactor has not seen.
        return self.redact_text(repr(value))

    def redact_text(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return redact_url(text)

    def __call__(self, logger: Any, method: str, event_dict: EventDict) -> dict[str, Any]:
        """structlog processor."""
        return {k: self.redact(v, k) for k, v in event_dict.items()}


def _add_service(service: str, version: str) -> Processor:
    def processor(logger: Any, method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        event_dict.setdefault("version", version)
        return event_dict
    return processor


def configure_logging(settings: Any, *, stream: TextIO | None = None) -> Redactor:
    """Configure structlog and stdlib logging for this process; returns the redactor in use.

    Reads ``settings.service_name``, ``version``, ``log_level`` (e.g. "INFO") and ``log_json``
    (False = coloured console lines for a developer's terminal). ``stream`` defaults to stderr.
    Safe to call again (tests do): the previous handler is replaced. Logs one
    ``settings.unknown_env`` warning if the environment holds ``TM_`` variables that no setting
    reads (:func:`tm_common.settings.warn_unknown_env`).
    """
    redactor = Redactor(settings_secrets(settings))
    level = logging.getLevelName(str(getattr(settings, "log_level", "INFO")).upper())
    level = level if isinstance(level, int) else logging.INFO
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        merge_event_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(getattr(settings, "service_name", "service"),
                     getattr(settings, "version", "")),
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if getattr(settings, "log_json", True)
                     else structlog.dev.ConsoleRenderer(colors=False))
    # Tracebacks become one string field (one line per event) before the redactor runs, so it
    # sees them; the redactor is the last step before rendering.
    tail: list[Processor] = [structlog.processors.format_exc_info, redactor]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("tm")
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == "tm":        # ours from an earlier call; leave others' (pytest's) alone
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own config would add non-JSON handlers; we run it with log_config=None and make its
    # loggers propagate here.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    structlog.configure(
        processors=[*shared, structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.processors.StackInfoRenderer(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a module-level ``log = structlog.get_logger()`` must follow a later
        # reconfiguration (tests reconfigure per case; services configure once at start).
        cache_logger_on_first_use=False,
    )
    # A misspelt or renamed TM_ variable would otherwise be ignored without a word.
    warn_unknown_env(settings)
    return redactor


def event_log_context(event: Envelope) -> dict[str, str]:
    """What to bind while handling ``event``: correlation id, instrument, event type.

    The instrument comes from the body when it has one, else from the correlation id
    (``{instrument}:{bar_time_ms}``)."""
    instrument = getattr(event.body, "instrument", None)
    if not instrument and ":" in event.correlation_id:
        instrument = event.correlation_id.split(":", 1)[0]
    ctx = {"correlation_id": event.correlation_id, "event_type": event.type}
    if instrument:
        ctx["instrument"] = str(instrument)
    return ctx


_EVENT: ContextVar[Envelope | None] = ContextVar("tm_log_event", default=None)


@contextmanager
def bound_event(event: Envelope) -> Iterator[None]:
    """Bind :func:`event_log_context` to every log line written inside the block. Lazily: the
    block keeps only the event (one context variable), and :func:`merge_event_context` works
    its fields out for the lines actually written; binding them per event cost the in-process
    backtest more than some handlers."""
    token = _EVENT.set(event)
    try:
        yield
    finally:
        _EVENT.reset(token)


def merge_event_context(_logger: Any, _method: str, event_dict: Any) -> Any:
    """Processor: the fields of the event in hand (:func:`bound_event`); a field the line
    names itself wins."""
    event = _EVENT.get()
    if event is not None:
        for k, v in event_log_context(event).items():
            event_dict.setdefault(k, v)
    return event_dict
