"""The executor's ``orderLinkId`` salt, kept in Redis beside its state.

Key: ``{namespace}state:{group}:link_salt:{account}`` (``account``: a hash of the API key,
:func:`tm_executor.domain.ids.account_tag`). Created once with ``SET NX`` and never rewritten:
the same deployment (namespace) trading the same account keeps its salt across restarts, so a
redelivered intent looks up and finds the order an earlier process placed; on a real venue
(testnet, mainnet: a shared, long-lived account) another deployment (another namespace or Redis)
draws its own salt at random, so the same intent ids do not collide on a shared account. On the
simulator the salt is fixed (:data:`~tm_executor.domain.ids.SIM_SALT`) unless
``TM_EXECUTOR_LINK_SALT_RANDOM`` says otherwise: each run has a fresh venue, and a mesh replay's
fills must name the same orders as the backtest's and as another run's (the chaos and fault
drills compare them). ``TM_EXECUTOR_LINK_SALT`` pins it (e.g. to move a deployment to a new
Redis while orders are open).
"""

from __future__ import annotations

import structlog
from tm_common.errors import TransientError
from tm_common.service import state_key

from tm_executor.config import ExecutorSettings
from tm_executor.domain.ids import (
    SIM_SALT,
    account_tag,
    check_salt,
    is_ours,
    new_salt,
    order_link_id,
)
from tm_executor.repository import ExecutorRepository

log = structlog.get_logger("tm.executor.links")


def ip_ban_key(settings: ExecutorSettings) -> str:
    """Where the end of an IP-ban silence is kept (wall-clock epoch ms; expires with it)."""
    return f"{state_key(settings)}:ip_ban_until_ms"


def salt_key(settings: ExecutorSettings) -> str:
    key = settings.bybit_api_key.get_secret_value() if settings.bybit_api_key else None
    return f"{state_key(settings)}:link_salt:{account_tag(key)}"


class LinkIds:
    """``link(intent_id)`` once :meth:`ensure` has loaded (or created) the salt."""

    def __init__(self, settings: ExecutorSettings, repo: ExecutorRepository, *,
                 real_venue: bool = True) -> None:
        self.repo = repo
        self.key = salt_key(settings)
        self.salt: str | None = (None if settings.link_salt is None
                                 else check_salt(settings.link_salt))
        random_salt = settings.link_salt_random
        self.random = real_venue if random_salt is None else random_salt

    def _draw(self) -> str:
        return new_salt() if self.random else SIM_SALT

    async def ensure(self) -> str:
        """The salt, loaded from Redis (created there when absent); a Redis failure is a
        :class:`TransientError` (the intent waits, nothing is sent unsalted)."""
        if self.salt is None:
            try:
                salt = await self.repo.get_or_create(self.key, self._draw)
                self.salt = check_salt(salt)
            except ValueError as e:
                raise TransientError(f"bad orderLinkId salt at {self.key}: {e}") from None
            log.info("executor.link_salt", key=self.key, salt=self.salt)
        return self.salt

    def link(self, intent_id: str) -> str:
        if self.salt is None:
            raise TransientError("orderLinkId salt not loaded yet")
        return order_link_id(intent_id, self.salt)

    def ours(self, link_id: str | None) -> bool:
        """This deployment's link id (False for every id until the salt is loaded)."""
        return self.salt is not None and is_ours(link_id, self.salt)
