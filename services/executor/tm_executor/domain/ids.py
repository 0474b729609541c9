"""Deterministic ``orderLinkId`` from an order intent.

Bybit accepts up to 36 characters of ``[A-Za-z0-9_-]`` and refuses a second order with an
``orderLinkId`` it already knows (110072). The id is a pure function of the intent id, so a
retried or redelivered intent always names the same venue order.
"""

from __future__ import annotations

import hashlib
import re

LINK_PREFIX = "tm-"
MAX_LINK_ID_LEN = 36
LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


def order_link_id(intent_id: str) -> str:
    """``"tm-"`` + the first 32 hex digits of sha256(intent_id): 35 characters."""
    digest = hashlib.sha256(intent_id.encode("utf-8")).hexdigest()
    return LINK_PREFIX + digest[:32]


def is_ours(link_id: str | None) -> bool:
    """True for an ``orderLinkId`` this executor derives (other orders are not its intents)."""
    if not link_id:
        return False
    return link_id.startswith(LINK_PREFIX) and len(link_id) == 35
