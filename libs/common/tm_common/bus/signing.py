"""Signed streams: who may have written an entry of a stream that moves money.

An entry of a stream in :data:`SIGNED_STREAMS` carries ``sig``: the HMAC-SHA256 (hex) of the
stream's logical name and every envelope field (``type`` ... ``body``, the exact text on the
wire), under that stream's key. The key is held by the services that produce the stream and
by those that consume it (:data:`KEY_HOLDERS`), and by nobody else: a client that can only
``XADD`` (a compromised signal pod, a leaked Redis password) cannot make an entry the consumer
accepts.

- **Signing** happens where envelopes become stream fields: the transports
  (:class:`~tm_common.bus.redis.RedisStreamsBus`, :class:`~tm_common.bus.memory.InMemoryBus`)
  sign every entry they publish or commit to a stream their :class:`KeyRing` holds a key for.
- **Verifying** happens in the consumer loop (:mod:`tm_common.bus.consumer`), before the entry
  is decoded: on a stream its key ring holds a key for, an entry without ``sig`` is
  dead-lettered with reason ``unsigned``, one whose ``sig`` does not match with ``bad
  signature``; the handler never sees either (metric ``tm_consumer_signature_refused_total``).
- **No key, no check.** A consumer without the key of a stream accepts its entries unchecked
  (development, the component tests, the in-process backtest); a consumer with the key requires
  every entry to be signed. ``tm up``, ``tm demo`` and ``tm paper`` give every run keys
  (:func:`local_keys`, a file under the data directory), the Helm chart takes them from a
  Secret, and the executor refuses to start on a real venue without the ``risk.order`` key.

Keys come from each holder's settings, one variable per stream:
``<service prefix>SIGNING_KEY_<STREAM>`` (``TM_EXECUTOR_SIGNING_KEY_RISK_ORDER``), so the
secret-scoped environment of each process carries only its own (:func:`signing_env` renders
all of them from one ``{stream: key}`` map). A key has at least :data:`MIN_KEY_CHARS`
characters; it is a ``SecretStr`` and is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from tm_common.bus.streams import EXEC_VENUE, MODELS_PROMOTED, RISK_BREAKER, RISK_COMMAND, RISK_ORDER
from tm_common.errors import ConfigError
from tm_common.events.base import ENVELOPE_FIELDS, Envelope
from tm_common.files import SECRET_MODE, replace_file

SIG_FIELD = "sig"
MIN_KEY_CHARS = 32
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad signature"
_DOMAIN = b"tm-sig-v1"

#: stream → the services that hold its key (producers first, then the consumers that verify).
#: ``trainer`` is the training job and ``tm models promote`` (prefix ``TM_TRAINER_``).
KEY_HOLDERS: Mapping[str, tuple[str, ...]] = {
    RISK_ORDER: ("risk", "executor"),
    RISK_COMMAND: ("risk",),
    RISK_BREAKER: ("risk", "executor", "sizer"),
    MODELS_PROMOTED: ("trainer", "signal", "regime", "sizer"),
    EXEC_VENUE: ("executor",),
}
SIGNED_STREAMS: tuple[str, ...] = tuple(KEY_HOLDERS)
TRAINER_ENV_PREFIX = "TM_TRAINER_"
LOCAL_KEYS_FILE = "signing-keys.json"


def key_field(stream: str) -> str:
    """The settings attribute holding ``stream``'s key: ``signing_key_risk_order``."""
    return "signing_key_" + stream.replace(".", "_")


def signing_key(stream: str) -> Any:
    """The ``Field`` of a settings attribute named :func:`key_field` (``None`` = no key)."""
    return Field(default=None, description=f"HMAC-SHA256 key of the {stream} stream "
                 f"(at least {MIN_KEY_CHARS} characters; shared with every holder)")


def env_var(service: str, stream: str) -> str:
    """The variable that gives ``service`` the key of ``stream``."""
    from tm_common.settings import APP_ENV_PREFIXES, SERVICE_ENV_PREFIXES

    prefix = {**SERVICE_ENV_PREFIXES, **APP_ENV_PREFIXES}[service]
    return prefix + key_field(stream).upper()


def signing_env(keys: Mapping[str, str]) -> dict[str, str]:
    """Every holder's variable for every stream of ``keys`` (``{stream: key}``): what a parent
    process adds to the environment it hands its services (each then receives only its own)."""
    return {env_var(svc, stream): key for stream, key in keys.items()
            for svc in KEY_HOLDERS.get(stream, ())}


def service_signing_env(service: str, keys: Mapping[str, str]) -> dict[str, str]:
    """The variables of :func:`signing_env` that ``service`` reads (its own keys only)."""
    return {env_var(service, stream): key for stream, key in keys.items()
            if service in KEY_HOLDERS.get(stream, ())}


def generate_keys() -> dict[str, str]:
    """A fresh random key (256 bits, hex) for every signed stream."""
    return {s: secrets.token_hex(32) for s in SIGNED_STREAMS}


def read_local_keys(data_dir: Path) -> dict[str, str]:
    """The keys :func:`local_keys` keeps under ``data_dir`` (``{}`` when there are none)."""
    try:
        doc = json.loads((Path(data_dir) / LOCAL_KEYS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k): str(v) for k, v in doc.items() if len(str(v)) >= MIN_KEY_CHARS}


def local_keys(data_dir: Path) -> dict[str, str]:
    """The keys of a local run: ``<data_dir>/signing-keys.json`` (mode 0600), created with
    :func:`generate_keys` on first use and kept, so that entries pending across a restart of
    the stack still verify. A stream missing from the file gets a key added."""
    path = Path(data_dir) / LOCAL_KEYS_FILE
    keys = read_local_keys(data_dir)
    if all(s in keys for s in SIGNED_STREAMS):
        return keys
    keys = {**generate_keys(), **keys}
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, json.dumps(keys), mode=SECRET_MODE, sync=True)
    return keys


def _value(fields: Mapping[Any, Any], name: str) -> bytes | None:
    v = fields.get(name)
    if v is None:
        v = fields.get(name.encode())
    if v is None:
        return None
    return v if isinstance(v, bytes) else str(v).encode()


def _message(stream: str, fields: Mapping[Any, Any]) -> bytes:
    """What is signed: a domain tag, the logical stream name, then each envelope field's text
    (length-prefixed, so no two field lists give the same bytes)."""
    parts = [_DOMAIN, stream.encode()]
    parts += [_value(fields, name) or b"" for name in ENVELOPE_FIELDS]
    return b"".join(b"%d:%s" % (len(p), p) for p in parts)


class KeyRing:
    """The signing keys one process holds, by logical stream name (empty: signs and checks
    nothing). ``keys`` values: text, bytes or ``SecretStr``; each at least
    :data:`MIN_KEY_CHARS` characters, else :class:`ConfigError` naming the stream."""

    def __init__(self, keys: Mapping[str, str | bytes | SecretStr] | None = None) -> None:
        self._keys: dict[str, bytes] = {}
        for stream, key in (keys or {}).items():
            raw = key.get_secret_value() if isinstance(key, SecretStr) else key
            data = raw if isinstance(raw, bytes) else raw.encode()
            if len(data) < MIN_KEY_CHARS:
                raise ConfigError(f"the signing key of {stream} has {len(data)} characters; "
                                  f"at least {MIN_KEY_CHARS} are needed")
            self._keys[stream] = data

    @classmethod
    def from_settings(cls, settings: Any) -> KeyRing:
        """The keys in ``settings``' ``signing_key_*`` attributes; a short key is a
        :class:`ConfigError` naming its variable (never its value)."""
        from tm_common.settings import env_name

        keys: dict[str, SecretStr] = {}
        for stream in SIGNED_STREAMS:
            value = getattr(settings, key_field(stream), None)
            if value is None:
                continue
            secret = value if isinstance(value, SecretStr) else SecretStr(str(value))
            if len(secret.get_secret_value()) < MIN_KEY_CHARS:
                raise ConfigError(f"{env_name(type(settings), key_field(stream))} is shorter "
                                  f"than {MIN_KEY_CHARS} characters")
            keys[stream] = secret
        return cls(keys)

    @property
    def streams(self) -> frozenset[str]:
        return frozenset(self._keys)

    def holds(self, stream: str) -> bool:
        return stream in self._keys

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:               # never the keys
        return f"KeyRing(streams={sorted(self._keys)})"

    def signature(self, stream: str, fields: Mapping[Any, Any]) -> str:
        return hmac.new(self._keys[stream], _message(stream, fields), hashlib.sha256).hexdigest()

    def sign(self, stream: str, fields: dict[str, str]) -> dict[str, str]:
        """``fields`` with ``sig`` added when this ring holds ``stream``'s key (else as is)."""
        if stream in self._keys:
            fields[SIG_FIELD] = self.signature(stream, fields)
        return fields

    def fields(self, stream: str, envelope: Envelope) -> dict[str, str]:
        """The stream entry of ``envelope`` on ``stream``, signed when a key is held."""
        return self.sign(stream, envelope.to_fields())

    def refusal(self, stream: str, fields: Mapping[Any, Any]) -> str | None:
        """Why an entry of ``stream`` must not be handled (:data:`UNSIGNED`,
        :data:`BAD_SIGNATURE`), or None: signed with this ring's key, or a stream it holds no
        key for (not checked)."""
        if stream not in self._keys:
            return None
        given = _value(fields, SIG_FIELD)
        if not given:
            return UNSIGNED
        expected = self.signature(stream, fields).encode()
        return None if hmac.compare_digest(given, expected) else BAD_SIGNATURE


NO_KEYS = KeyRing()
