"""Deterministic, salted ``orderLinkId`` from an order intent.

Bybit accepts up to 36 characters of ``[A-Za-z0-9_-]`` and refuses a second order with an
``orderLinkId`` it already knows (110072). The id is a pure function of the salt and the intent
id, so a retried or redelivered intent always names the same venue order.

The salt is per account and per deployment (:class:`tm_executor.links.LinkIds` keeps it in
Redis beside the executor's state, created once): a restart keeps it, so idempotency survives,
while two deployments replaying the same window on one shared account (same intent ids) name
different orders instead of colliding on 110072.

Layout: ``"tm"`` + salt (8 of ``[a-z0-9]``) + ``"-"`` + the first 25 hex digits of
sha256(salt + intent_id): 36 characters.
"""

from __future__ import annotations

import hashlib
import re
import secrets

LINK_PREFIX = "tm"
SALT_LEN = 8
MAX_LINK_ID_LEN = 36
LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
SALT_RE = re.compile(r"^[a-z0-9]{8}$")
# The simulator's salt unless told otherwise: every run on a (fresh) simulator, and the
# in-process backtest, name an intent's order alike, so that their fills compare equal.
SIM_SALT = "sim00000"
_OURS_RE = re.compile(r"^tm[a-z0-9]{8}-[0-9a-f]{25}$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_salt() -> str:
    """A random salt: 8 characters of ``[a-z0-9]`` (about 41 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(SALT_LEN))


def check_salt(salt: str) -> str:
    """``salt`` if it is 8 characters of ``[a-z0-9]``, else ``ValueError`` (one line)."""
    if not SALT_RE.match(salt):
        raise ValueError(f"orderLinkId salt must be {SALT_LEN} characters of [a-z0-9], "
                         f"got {len(salt)} characters")
    return salt


def account_tag(api_key: str | None) -> str:
    """The account a salt belongs to: 12 hex digits of sha256(api key) (``"nokey"`` without
    one). Never the key itself: the tag is part of a Redis key name."""
    if not api_key:
        return "nokey"
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


def order_link_id(intent_id: str, salt: str) -> str:
    """``"tm" + salt + "-" + sha256(salt + intent_id)[:25]``: 36 characters."""
    check_salt(salt)
    digest = hashlib.sha256(f"{salt}:{intent_id}".encode()).hexdigest()
    return f"{LINK_PREFIX}{salt}-{digest[:25]}"


def is_ours(link_id: str | None, salt: str | None = None) -> bool:
    """True for an ``orderLinkId`` an executor derives; with ``salt``, only this deployment's
    (another deployment's orders on a shared account are not its intents)."""
    if not link_id or not _OURS_RE.match(link_id):
        return False
    return salt is None or link_id[2:2 + SALT_LEN] == salt
