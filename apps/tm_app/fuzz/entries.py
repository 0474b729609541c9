"""Malformed stream entries for the stream fuzzer (``tm_app.fuzz.streams``).

Each entry starts from a *valid* entry of a random registered event type (envelope fields plus
the body as compact JSON, exactly as producers write them) and is broken in one of eight ways:

- ``bad_json``: the body is not JSON (truncated, stray characters, single quotes, NaN, empty);
- ``wrong_types``: a body or envelope field of the wrong JSON type, or a body that is not an object;
- ``huge_values``: numbers out of range (``1e400``, a 5000-digit integer) in body or envelope;
- ``unknown_type``: a ``type`` no service knows (near misses of real names, unicode, empty);
- ``missing_fields``: envelope fields or required body fields removed;
- ``wrong_schema_version``: newer than supported, or not an integer;
- ``binary_garbage``: keys or values that are not UTF-8, random bytes;
- ``oversized``: 4-32 KiB fields (one 1 MiB entry per stream) that are also malformed.

Every generated entry is checked here with :meth:`Envelope.from_fields` (with every event type
of every service registered): only entries that raise ``MalformedEvent`` are returned, so each
one must be dead-lettered by every consumer group, whatever the service. Generation is
deterministic for a given seed and stream.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import msgspec
import msgspec.inspect as mi

CATEGORIES = ("bad_json", "wrong_types", "huge_values", "unknown_type", "missing_fields",
              "wrong_schema_version", "binary_garbage", "oversized")
# Oversized entries are rare: each one is copied into the dead-letter stream once per group.
WEIGHTS = (14, 16, 12, 12, 16, 12, 14, 4)
BIG_ENTRY_BYTES = 1 << 20
Fields = dict[Any, Any]

if TYPE_CHECKING:
    from tm_common.events.base import EventBody


def event_types() -> dict[str, type[EventBody]]:
    """Every event type a service can decode: the shared catalogue and the services' own."""
    import tm_common.events  # noqa: F401  (registers the catalogue)
    import tm_risk.commands  # noqa: F401  (breaker.command_issued)
    import tm_sizer.commands  # noqa: F401  (sizer.join_flush_requested)
    from tm_common.events.base import event_types as registered

    return registered()


def is_malformed(fields: Fields) -> bool:
    """True when the consumer would refuse the entry at decoding (``MalformedEvent``)."""
    from tm_common.errors import MalformedEvent
    from tm_common.events.base import Envelope

    try:
        Envelope.from_fields(fields)
    except MalformedEvent:
        return True
    return False


# -- valid values ---------------------------------------------------------------------------
def _valid(t: Any, rng: random.Random) -> Any:
    if isinstance(t, mi.StrType):
        return rng.choice(["BTCUSDT", "ETHUSDT", "x", "abc-123"])
    if isinstance(t, mi.BoolType):
        return rng.random() < 0.5
    if isinstance(t, mi.IntType):
        return rng.choice([0, 1, 240, 1_735_689_600_000])
    if isinstance(t, mi.FloatType):
        return rng.choice([0.0, 0.5, 1.25])
    if isinstance(t, mi.DecimalType):
        return rng.choice(["100.5", "0.001", "42"])
    if isinstance(t, mi.LiteralType):
        return rng.choice(list(t.values))
    if isinstance(t, mi.NoneType):
        return None
    if isinstance(t, mi.UnionType):
        return _valid(rng.choice(t.types), rng)
    if isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        return [_valid(t.item_type, rng) for _ in range(rng.randint(0, 2))]
    if isinstance(t, mi.TupleType):
        return [_valid(x, rng) for x in t.item_types]
    if isinstance(t, mi.DictType):
        return {}
    if isinstance(t, mi.StructType):
        return {f.encode_name: _valid(f.type, rng) for f in t.fields if f.required}
    if isinstance(t, mi.AnyType):
        return None
    raise TypeError(f"no valid value for {t!r}")


def _wrong(t: Any, rng: random.Random) -> Any:
    """A JSON value of a type that ``t`` does not accept (most of the time: checked later)."""
    if isinstance(t, mi.StrType):
        return rng.choice([0, 1.5, True, [], {"a": 1}, None])
    if isinstance(t, mi.IntType):
        return rng.choice(["12", 1.5, True, [], {}, None, "0x10"])
    if isinstance(t, mi.FloatType):
        return rng.choice(["1.5", [], {}, None, True])
    if isinstance(t, mi.DecimalType):
        return rng.choice([[], {}, True, None, "abc", "1,5", "12 USDT"])
    if isinstance(t, mi.BoolType):
        return rng.choice(["true", 1, 0, None, []])
    if isinstance(t, mi.LiteralType):
        return rng.choice(["Hold", "", 7, None, [t.values[0]]])
    if isinstance(t, (mi.ListType, mi.VarTupleType, mi.TupleType)):
        return rng.choice(["abc", {"a": 1}, 5, [[[]]], [{"x": []}]])
    if isinstance(t, mi.DictType):
        return rng.choice([[], "abc", 5, True])
    return rng.choice([[], {}, "abc"])


def _out_of_range(t: Any, rng: random.Random) -> str | None:
    """JSON text of a number that ``t`` cannot hold, or None."""
    if isinstance(t, (mi.IntType, mi.FloatType)):
        return rng.choice(["1e400", "-1e999", "9" * 5000, "-" + "9" * 400])
    return None


class EntryFactory:
    """Malformed entries for one stream. ``make(i)`` → (category, fields); deterministic."""

    def __init__(self, stream: str, *, seed: int = 0, oversized_kib: tuple[int, int] = (4, 32),
                 big_entry_index: int | None = None) -> None:
        self.rng = random.Random(f"{seed}:{stream}")
        self.types = event_types()
        self.names = sorted(self.types)
        self.info = {n: cast(mi.StructType, mi.type_info(c)) for n, c in self.types.items()}
        self.oversized_kib = oversized_kib
        self.big_entry_index = big_entry_index
        self.rejected = 0                   # generated entries that decoded after all (redrawn)
        self._makers: dict[str, Callable[[], Fields]] = {
            c: getattr(self, "_" + c) for c in CATEGORIES}

    def make(self, i: int) -> tuple[str, Fields]:
        """The ``i``-th malformed entry of this stream: (category, fields)."""
        if i == self.big_entry_index:
            return "oversized", self._oversized(size=BIG_ENTRY_BYTES)
        for _ in range(50):
            category = self.rng.choices(CATEGORIES, WEIGHTS)[0]
            fields = self._makers[category]()
            if is_malformed(fields):
                return category, fields
            self.rejected += 1
        raise RuntimeError("could not generate a malformed entry in 50 attempts")

    # -- a valid starting point -----------------------------------------------------------
    def _base(self) -> tuple[str, dict[str, Any], Fields]:
        name = self.rng.choice(self.names)
        body = {f.encode_name: _valid(f.type, self.rng) for f in self.info[name].fields
                if f.required or self.rng.random() < 0.3}
        cls = self.types[name]
        fields: Fields = {
            "type": name, "schema_version": str(cls.SCHEMA_VERSION),
            "event_id": f"fuzz-{self.rng.getrandbits(64):016x}",
            "correlation_id": f"BTCUSDT:{1_735_689_600_000 + 14_400_000 * self.rng.randint(0, 99)}",
            "causation_id": "", "ts_event_ns": str(1_735_704_000_000_000_000),
            "ts_init_ns": str(1_735_704_000_000_000_001),
            "body": json.dumps(body, separators=(",", ":")),
        }
        return name, body, fields

    def _field(self, name: str, required_only: bool = False):
        fs = [f for f in self.info[name].fields if f.required or not required_only]
        return self.rng.choice(fs) if fs else None

    # -- the eight categories -------------------------------------------------------------
    def _bad_json(self) -> Fields:
        _, _, f = self._base()
        b = f["body"]
        cut = self.rng.randint(0, max(len(b) - 1, 0))
        pos = self.rng.randint(0, len(b))
        f["body"] = self.rng.choice([
            b[:cut],
            b[:pos] + self.rng.choice('{}[],:"\\') + b[pos:],
            b.replace(":", "=", 1),
            b.replace('"', "'"),
            b + self.rng.choice(["}", ",", "]", " x", "\x00"]),
            '{"open": NaN}', "", "   ", "undefined", "{", "[", '{"a":1,}', '/* c */{"a":1}',
            "\ufeff" + b,
        ])
        return f

    def _wrong_types(self) -> Fields:
        name, body, f = self._base()
        r = self.rng.random()
        if r < 0.2:
            f["body"] = self.rng.choice(["[]", '"bar"', "42", "null", "true", f"[{f['body']}]"])
        elif r < 0.4:
            key = self.rng.choice(["ts_event_ns", "ts_init_ns"])
            f[key] = self.rng.choice(["abc", "1.5", "1e9", "", "0x10", "[1]", "None", "١٢"])
        else:
            fld = self._field(name)
            if fld is not None:
                body[fld.encode_name] = _wrong(fld.type, self.rng)
            f["body"] = json.dumps(body, separators=(",", ":"))
        return f

    def _huge_values(self) -> Fields:
        name, body, f = self._base()
        numeric = [fl for fl in self.info[name].fields
                   if _out_of_range(fl.type, self.rng) is not None]
        if numeric and self.rng.random() < 0.6:
            fld = self.rng.choice(numeric)
            text = _out_of_range(fld.type, self.rng)
            assert text is not None         # the field is numeric: it was picked for that
            body[fld.encode_name] = "__HUGE__"
            f["body"] = json.dumps(body, separators=(",", ":")).replace('"__HUGE__"', text)
        else:
            key = self.rng.choice(["ts_event_ns", "ts_init_ns", "schema_version"])
            f[key] = self.rng.choice(["9" * 5000, "1" + "0" * 4400, "-" + "9" * 4500])
        return f

    def _unknown_type(self) -> Fields:
        name, _, f = self._base()
        f["type"] = self.rng.choice([
            "", " ", name.upper(), " " + name, name + "\n", name.replace(".", "_"), name + ".v2",
            "order.cancelled", "bar.opened", "null", "None", "0", "bár.clösed", "💥",
            "x" * self.rng.randint(1, 300), "\u200bbar.closed", "md.bar", "../../etc/passwd",
        ])
        return f

    def _missing_fields(self) -> Fields:
        name, body, f = self._base()
        if self.rng.random() < 0.5:
            keys = list(f)
            for k in self.rng.sample(keys, self.rng.randint(1, len(keys) - 1)):
                del f[k]
        else:
            required = [fl.encode_name for fl in self.info[name].fields if fl.required]
            drop = self.rng.sample(required, self.rng.randint(1, len(required))) if required else []
            f["body"] = json.dumps({k: v for k, v in body.items() if k not in drop},
                                   separators=(",", ":"))
        return f

    def _wrong_schema_version(self) -> Fields:
        name, _, f = self._base()
        sv = self.types[name].SCHEMA_VERSION
        f["schema_version"] = self.rng.choice([
            str(sv + 1), str(sv + self.rng.randint(2, 10**6)), str(2**63), str(2**80), "v1", "",
            "1.0", "1.", "one", "0x1", "1e0", "+2", "nan", "None", "[1]", "1_000",
        ])
        return f

    def _binary_garbage(self) -> Fields:
        _, _, f = self._base()
        rb = self.rng.randbytes
        r = self.rng.random()
        if r < 0.4:
            for k in self.rng.sample(list(f), self.rng.randint(1, 3)):
                f[k] = b"\xff" + rb(self.rng.randint(0, 64))
        elif r < 0.6:
            f[b"\xfe" + rb(self.rng.randint(0, 16))] = rb(self.rng.randint(1, 64))
            f[b"ty\xffpe"] = f.pop("type")
        elif r < 0.8:
            f["body"] = b"\xff\xfe" + rb(self.rng.randint(1, 512))
        else:
            f = {b"\x00" + rb(self.rng.randint(0, 8)): rb(self.rng.randint(0, 256))
                 for _ in range(self.rng.randint(1, 6))}
        return f

    def _oversized(self, size: int | None = None) -> Fields:
        name, body, f = self._base()
        lo, hi = self.oversized_kib
        n = size or self.rng.randint(lo * 1024, hi * 1024)
        r = self.rng.random()
        if r < 0.3:
            f["body"] = '{"instrument":"' + "A" * n                      # unterminated string
        elif r < 0.5:
            f["type"] = "t" * n                                          # unknown type
        elif r < 0.75:
            fld = self._field(name, required_only=True)
            key = fld.encode_name if fld is not None else "x"
            is_dict = fld is not None and isinstance(fld.type, mi.DictType)
            body[key] = "B" * n if is_dict else {"nested": "B" * n}       # wrong type, huge
            f["body"] = json.dumps(body, separators=(",", ":"))
        else:
            for j in range(max(n // 64, 1)):                             # many fields, no body
                f[f"extra_{j}"] = "C" * 48
            del f["body"]
        return f


def valid_bar_fields(instrument: str = "BTCUSDT", open_ms: int = 1_735_689_600_000,
                     ts_init_ns: int = 1) -> tuple[str, Fields]:
    """A valid ``bar.closed`` entry (event id, fields) for the check after the garbage."""
    from tm_common.events import BarClosed
    from tm_common.events.base import Envelope

    p = Decimal("94000.5")
    bar = BarClosed(instrument=instrument, open_time_ms=open_ms, close_time_ms=open_ms + 14_399_999,
                    open=p, high=p + 100, low=p - 100, close=p + 10, volume=Decimal("12.5"),
                    source="replay")
    env = Envelope.root(bar, key=f"fuzz:{instrument}:{open_ms}",
                        correlation_id=f"{instrument}:{open_ms}",
                        ts_event_ns=(open_ms + 14_400_000) * 1_000_000, ts_init_ns=ts_init_ns)
    return env.event_id, env.to_fields()


def valid_dvol_fields(day_ms: int = 1_735_603_200_000, ts_init_ns: int = 1) -> tuple[str, Fields]:
    """A valid ``dvol.updated`` entry (event id, fields)."""
    from tm_common.events import DvolUpdated
    from tm_common.events.base import Envelope

    body = DvolUpdated(currency="BTC", day_ms=day_ms, known_at_ms=day_ms + 86_400_000, value=55.5)
    env = Envelope.root(body, key=f"fuzz:dvol:{day_ms}", correlation_id=f"BTC:{day_ms}",
                        ts_event_ns=(day_ms + 86_400_000) * 1_000_000, ts_init_ns=ts_init_ns)
    return env.event_id, env.to_fields()


def _selfcheck(n: int = 2000) -> dict[str, int]:
    """Generate ``n`` entries and count categories (for a quick look: ``python -m``)."""
    fac = EntryFactory("md.bar", big_entry_index=None)
    counts = dict.fromkeys(CATEGORIES, 0)
    for i in range(n):
        counts[fac.make(i)[0]] += 1
    counts["redrawn"] = fac.rejected
    return counts


if __name__ == "__main__":
    print(msgspec.json.encode(_selfcheck()).decode())
