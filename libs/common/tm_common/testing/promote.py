"""Put a throwaway registry's newest signal model in production, whatever its gates said: the
end-to-end tests need a window that trades (the shipped gates are unchanged for users)."""

from __future__ import annotations

import asyncio


async def _promote_newest_signal(db_url: str, reason: str) -> None:
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry

    engine = make_engine(db_url)
    try:
        reg = ModelRegistry(engine)
        if await reg.production("signal") is None:
            candidates = await reg.list("signal")
            assert candidates, "no signal model was registered"
            await reg.promote(candidates[-1].version, reason)
    finally:
        await engine.dispose()


def force_signal_model(db_url: str, reason: str = "test: exercise trading") -> None:
    """Promote the newest signal version of the registry at ``db_url`` unless one is in
    production already."""
    asyncio.run(_promote_newest_signal(db_url, reason))
