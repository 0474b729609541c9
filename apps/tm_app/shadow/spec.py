"""The shadow book as one more supervised process of a local run (``tm demo``, ``tm paper``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from tm_common.settings import CommonSettings, to_env

from tm_app.shadow.config import SHADOW_PORT, ShadowSettings
from tm_app.stack.supervisor import ProcessSpec


def book_namespace(namespace: str, candidate: str) -> str:
    """Where a run's book for ``candidate`` keeps its streams (the settings' default)."""
    return ShadowSettings.from_values(namespace=namespace).namespace_for(candidate)


def shadow_spec(candidate: str, *, shared: Mapping[str, object], port_offset: int,
                initial_equity: Decimal, slippage_bps: Decimal = Decimal(2), seed: int = 42,
                extra_env: Mapping[str, str] | None = None,
                flush_after_s: float = 30.0, instruments_file: Path | None = None) -> ProcessSpec:
    """``python -m tm_app.shadow`` for ``candidate``. ``shared``: the run's common settings
    (``namespace`` is production's: the book reads it and writes under its own); its
    environment is rendered as the services' are: shared fields, ``extra_env``, then its own."""
    shared_env = to_env(CommonSettings.from_values(**shared))
    own = to_env(ShadowSettings.from_values(
        **shared, service_name="shadow", http_port=SHADOW_PORT + port_offset,
        candidate=candidate, initial_equity_usdt=initial_equity, slippage_bps=slippage_bps,
        seed=seed, flush_after_s=flush_after_s, instruments_file=instruments_file))
    env = {**shared_env, **(extra_env or {}),
           **{k: v for k, v in own.items() if k not in shared_env}}
    return ProcessSpec(name="shadow", argv=[sys.executable, "-m", "tm_app.shadow"], env=env,
                       port=SHADOW_PORT + port_offset)
