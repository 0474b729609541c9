"""Portfolio settings (``TM_PORTFOLIO_*``; shared fields ``TM_*``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings


class PortfolioSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE_ENV_PREFIXES["portfolio"])
    env_names: ClassVar[Mapping[str, str]] = {"initial_equity": "initial_equity_usdt"}
    service_name: str = "portfolio"
    http_port: int = SERVICE_PORTS["portfolio"]
    # symbols (TM_SYMBOLS, common): the instruments whose bars complete a bar time
    initial_equity: Decimal = Field(default=Decimal(100_000), gt=0, description="USDT")
    db_enabled: bool = True
    db_max_backlog: int = Field(default=100_000, ge=1, description="row batches held while the "
                                "database is down; beyond it the oldest are dropped (counted)")

    @property
    def periods_per_year(self) -> float:
        """Bars per year (365 days): 2190 for 4h bars."""
        return 365 * 24 * 60 / self.interval_min
