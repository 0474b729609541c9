"""What each service of the local stack is given from the environment: the variables its settings
read, and a few basics every process needs; nothing else.

A service's settings class is found by its name (the keys of
:data:`tm_common.settings.SERVICE_ENV_PREFIXES`: ``executor`` → ``ExecutorSettings``); it reads
the shared ``TM_<FIELD>`` variables of :class:`~tm_common.settings.CommonSettings` and its own
prefixed ones (:func:`tm_common.settings.known_env`). So ``TM_EXECUTOR_BYBIT_API_KEY`` and
``TM_EXECUTOR_BYBIT_API_SECRET`` reach the executor only, ``TM_SIM_API_SECRET`` the simulator
only. A service of a custom table (``TM_SERVICES_FILE``) whose name is none of these gets the
shared variables only.

Besides ``TM_`` variables a service gets :data:`BASIC_ENV` (the interpreter's search path, the
locale, the CA bundles and libpq's certificate files, the proxies) and nothing else: not the
user's other credentials, not the test and bench variables (``TM_TEST_*``), not the CLI's own
(``TM_SERVICES_FILE``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from pydantic_settings import BaseSettings
from tm_common.settings import CommonSettings, known_env, unknown_env

# name → "module:Class" of each service's settings (imported only when a stack is built)
SETTINGS_CLASSES: Mapping[str, str] = {
    "exchange_sim": "tm_exchange_sim.config:ExchangeSimSettings",
    "ingest": "tm_ingest.config:IngestSettings",
    "regime": "tm_regime.config:RegimeSettings",
    "signal": "tm_signal.config:SignalSettings",
    "sizer": "tm_sizer.config:SizerSettings",
    "risk": "tm_risk.config:RiskSettings",
    "executor": "tm_executor.config:ExecutorSettings",
    "portfolio": "tm_portfolio.config:PortfolioSettings",
}

_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
BASIC_ENV: frozenset[str] = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED",
    "PYTHONWARNINGS", "PYTHONFAULTHANDLER", "PYTHONIOENCODING", "VIRTUAL_ENV",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL",
    *_PROXIES, *(p.lower() for p in _PROXIES),
})
BASIC_PATTERNS: tuple[str, ...] = ("LC_*",)


def settings_class(service: str) -> type[CommonSettings]:
    """The settings class of ``service`` (:data:`SETTINGS_CLASSES`), else :class:`CommonSettings`."""
    ref = SETTINGS_CLASSES.get(service.replace("-", "_"))
    if ref is None:
        return CommonSettings
    module, _, name = ref.partition(":")
    cls: type[CommonSettings] = getattr(importlib.import_module(module), name)
    return cls


def is_basic(name: str) -> bool:
    return name in BASIC_ENV or any(fnmatchcase(name, p) for p in BASIC_PATTERNS)


def basic_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The basics of ``environ`` (default ``os.environ``): what every child may inherit."""
    return {k: v for k, v in (os.environ if environ is None else environ).items()
            if is_basic(k)}


def service_env(service: str, env: Mapping[str, str]) -> dict[str, str]:
    """The part of ``env`` that ``service`` may see: the ``TM_`` variables its settings read
    (names compared in upper case, as pydantic-settings does) and the basics."""
    allowed = known_env([settings_class(service)])
    return {k: v for k, v in env.items() if k.upper() in allowed or is_basic(k)}


def unread_env(services: Iterable[str], env: Mapping[str, str],
               also: Iterable[type[BaseSettings]] = ()) -> list[str]:
    """``TM_`` names in ``env`` that none of ``services`` (nor the classes in ``also``: the CLI's
    own settings) reads, sorted (:func:`tm_common.settings.unknown_env`: another service's
    prefixed variable is left to it). A service never sees them, so its own start-up warning
    cannot name them: ``tm up`` does."""
    return unknown_env([*(settings_class(s) for s in services), *also], env)
