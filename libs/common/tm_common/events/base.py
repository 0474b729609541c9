"""Event envelope, body base class and the wire codec.

On Redis an event is one stream entry whose fields are the envelope (readable with plain
``redis-cli XRANGE``) plus ``body``: the event body as compact JSON. Decimals travel as strings,
unknown body fields are ignored (forward compatible), and anything that does not decode raises
:class:`~tm_common.errors.MalformedEvent`.
"""

from __future__ import annotations

import functools
import types
import typing
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from tm_common.errors import MalformedEvent

_ENC = msgspec.json.Encoder(decimal_format="string")
_NS = uuid.UUID("6f1c3a52-8d0e-4c57-9d53-6a1f0b3e2c11")

ENVELOPE_FIELDS = (
    "type", "schema_version", "event_id", "correlation_id", "causation_id",
    "ts_event_ns", "ts_init_ns", "body",
)


class EventBody(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every event body. Subclasses set ``TYPE`` (past tense) and ``SCHEMA_VERSION``."""

    TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1


class BarEventBody(EventBody, frozen=True, kw_only=True):
    """Base of the bodies about one instrument's bar (``bar_time_ms``: the bar's open time, ms
    UTC): the pair that keys the chain of one bar (``correlation_id``)."""

    instrument: str
    bar_time_ms: int


class FundingEventBody(EventBody, frozen=True, kw_only=True):
    """Base of the bodies about one perpetual's funding settlement: ``rate`` settled at
    ``settle_time_ms`` (ms UTC)."""

    instrument: str
    settle_time_ms: int
    rate: Decimal


_REGISTRY: dict[str, type[EventBody]] = {}
_DECODERS: dict[str, msgspec.json.Decoder[EventBody]] = {}


def register(cls: type[EventBody]) -> type[EventBody]:
    """Class decorator: make an event body type decodable by its ``TYPE`` name."""
    if not cls.TYPE:
        raise TypeError(f"{cls.__name__} has no TYPE")
    if cls.TYPE in _REGISTRY and _REGISTRY[cls.TYPE] is not cls:
        raise TypeError(f"event type {cls.TYPE!r} registered twice")
    _REGISTRY[cls.TYPE] = cls
    _DECODERS[cls.TYPE] = msgspec.json.Decoder(cls)
    return cls


def event_types() -> dict[str, type[EventBody]]:
    """Every registered event type name → body class."""
    return dict(_REGISTRY)


def deterministic_id(*parts: object) -> str:
    """A UUID derived from ``parts``: the same inputs always give the same id."""
    return str(uuid.uuid5(_NS, "|".join(str(p) for p in parts)))


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """An event: envelope metadata plus a typed body.

    ``correlation_id`` is ``{instrument}:{bar_time_ms}``, shared by the whole chain of one bar;
    ``causation_id`` is the ``event_id`` of the event that caused this one ("" for a root).
    ``ts_event_ns`` is market time (the bar's close), ``ts_init_ns`` when this event was created.
    """

    event_id: str
    correlation_id: str
    causation_id: str
    ts_event_ns: int
    ts_init_ns: int
    body: EventBody

    @property
    def type(self) -> str:
        return self.body.TYPE

    @property
    def schema_version(self) -> int:
        return self.body.SCHEMA_VERSION

    @classmethod
    def root(cls, body: EventBody, *, key: str, correlation_id: str, ts_event_ns: int,
             ts_init_ns: int) -> Envelope:
        """A root event (no cause), its id derived from ``key`` (a natural key such as
        ``bar:BTCUSDT:1700000000000``) so that re-publishing the same fact gives the same id."""
        return cls(event_id=deterministic_id(body.TYPE, key), correlation_id=correlation_id,
                   causation_id="", ts_event_ns=ts_event_ns, ts_init_ns=ts_init_ns, body=body)

    def caused(self, body: EventBody, *, index: int, ts_init_ns: int,
               ts_event_ns: int | None = None, correlation_id: str | None = None) -> Envelope:
        """An event caused by this one. Its id is derived from this event's id, the output
        index and type, so that handling the same input twice yields the same ids."""
        return Envelope(
            event_id=deterministic_id(self.event_id, index, body.TYPE),
            correlation_id=self.correlation_id if correlation_id is None else correlation_id,
            causation_id=self.event_id,
            ts_event_ns=self.ts_event_ns if ts_event_ns is None else ts_event_ns,
            ts_init_ns=ts_init_ns,
            body=body,
        )

    def to_fields(self) -> dict[str, str]:
        """Stream entry fields: every envelope field as text, the body as compact JSON."""
        return {
            "type": self.body.TYPE,
            "schema_version": str(self.body.SCHEMA_VERSION),
            "event_id": self.event_id,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "ts_event_ns": str(self.ts_event_ns),
            "ts_init_ns": str(self.ts_init_ns),
            "body": _ENC.encode(self.body).decode(),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Envelope:
        """Decode stream entry fields (bytes or str keys/values).

        Raises :class:`MalformedEvent` naming the problem for a missing field, an unknown type,
        a schema version newer than this code understands, or a body that does not validate.
        """
        f = {_text(k): _text(v) for k, v in fields.items()}
        missing = [k for k in ENVELOPE_FIELDS if k not in f]
        if missing:
            raise MalformedEvent(f"missing envelope field(s): {', '.join(missing)}")
        etype = f["type"]
        body_cls = _REGISTRY.get(etype)
        if body_cls is None:
            raise MalformedEvent(f"unknown event type {etype!r}")
        try:
            version = int(f["schema_version"])
            ts_event, ts_init = int(f["ts_event_ns"]), int(f["ts_init_ns"])
        except ValueError as e:
            raise MalformedEvent(f"{etype}: non-integer envelope field: {e}") from e
        if version < 1:
            raise MalformedEvent(f"{etype}: schema_version {version} < 1")
        if not (0 <= ts_event < _MAX_TS_NS and 0 <= ts_init < _MAX_TS_NS):
            raise MalformedEvent(f"{etype}: timestamp out of range (ts_event_ns={ts_event}, "
                                 f"ts_init_ns={ts_init})")
        if version > body_cls.SCHEMA_VERSION:
            raise MalformedEvent(
                f"{etype}: schema_version {version} is newer than supported {body_cls.SCHEMA_VERSION}")
        try:
            body = _DECODERS[etype].decode(f["body"])
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise MalformedEvent(f"{etype}: invalid body: {e}") from e
        _check_numbers(etype, body)
        return cls(event_id=f["event_id"], correlation_id=f["correlation_id"],
                   causation_id=f["causation_id"], ts_event_ns=ts_event, ts_init_ns=ts_init,
                   body=body)


    def checked(self) -> Envelope:
        """This envelope, if its numbers would pass :meth:`from_fields` (a consumer handed the
        envelope itself, without a decode, checks it this way); else :class:`MalformedEvent`."""
        _check_numbers(self.type, self.body)
        return self


def _check_numbers(etype: str, body: Any) -> None:
    bad = _non_finite(body)
    if bad:
        raise MalformedEvent(f"{etype}: invalid body: {bad} is not a finite number in range")


_MAX_TS_NS = 2**63        # int64 nanoseconds (year 2262)


def _non_finite(obj: Any, path: str = "$") -> str | None:
    """The path of the first Decimal that is NaN, infinite or absurdly large or small (beyond
    1e18, or a non-zero below 1e-30), or None. Decimals arrive as strings, so "NaN" and
    "1e999999" decode; no price, quantity or amount is one. Every decoded event passes here:
    a struct's plain fields (text, integers, floats, flags) are skipped by type, and the path
    is only spelled out for a bad number."""
    hit = _bad_number(obj)
    return None if hit is None else path + hit


def _bad_number(obj: Any) -> str | None:
    if isinstance(obj, Decimal):
        ok = obj.is_finite() and (obj.is_zero() or -30 <= obj.adjusted() <= 18)
        return None if ok else ""
    if isinstance(obj, msgspec.Struct):
        for name in _number_fields(type(obj)):
            hit = _bad_number(getattr(obj, name))
            if hit is not None:
                return f".{name}{hit}"
    elif isinstance(obj, (tuple, list)):
        for i, x in enumerate(obj):
            hit = _bad_number(x)
            if hit is not None:
                return f"[{i}]{hit}"
    elif isinstance(obj, dict):
        for k, x in obj.items():
            hit = _bad_number(x)
            if hit is not None:
                return f".{k}{hit}"
    return None


_PLAIN_TYPES = (str, int, float, bool, type(None))


def _plain(tp: Any) -> bool:
    """True for a type that can hold no Decimal: text, numbers other than Decimal, flags,
    literals, and unions and constrained forms of those."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return True
    if origin is typing.Annotated:
        return _plain(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return all(_plain(a) for a in typing.get_args(tp))
    return tp in _PLAIN_TYPES


@functools.cache
def _number_fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of ``cls`` that may hold a Decimal (directly or nested)."""
    return tuple(f.name for f in msgspec.structs.fields(cls) if not _plain(f.type))


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        try:
            return v.decode()
        except UnicodeDecodeError as e:
            raise MalformedEvent(f"field is not UTF-8: {e}") from e
    return str(v)
