"""Per-service admin tokens (issue 19, part 5): each service with admin endpoints has its own.

- risk's breaker endpoints: ``TM_RISK_ADMIN_TOKEN``;
- the simulator's control API: ``TM_SIM_ADMIN_TOKEN``; ingest, which drives the simulator's
  clock in lockstep replay, holds that one as ``TM_INGEST_SIM_ADMIN_TOKEN`` (never risk's).

A service's own token wins over the shared ``TM_ADMIN_TOKEN`` (kept for one-box development
and tests); whichever is used is the settings' ``admin_token``, so the endpoints read one field.
A token shorter than :data:`MIN_ADMIN_TOKEN_CHARS`, own or shared, is a start-up error naming
the variable, never the value (the settings classes hide inputs in validation errors).
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

MIN_ADMIN_TOKEN_CHARS = 24

#: service → the variable of its own token (the keys of ``tm up``'s token file)
ADMIN_TOKEN_VARS: dict[str, str] = {"risk": "TM_RISK_ADMIN_TOKEN",
                                    "exchange_sim": "TM_SIM_ADMIN_TOKEN"}
#: services that call another's admin API: service → (whose token, its variable)
ADMIN_TOKEN_CLIENTS: dict[str, tuple[str, str]] = {
    "ingest": ("exchange_sim", "TM_INGEST_SIM_ADMIN_TOKEN")}


def own_token_first(data: Any, field: str, variable: str) -> Any:
    """A ``model_validator(mode="before")`` body: ``field`` (the service's own token, read from
    ``variable``), when set, must be at least :data:`MIN_ADMIN_TOKEN_CHARS` long (else
    ``ValueError`` naming ``variable``, never the value) and becomes ``admin_token``."""
    if isinstance(data, dict) and data.get(field) not in (None, ""):
        check_length(data[field], variable)
        return {**data, "admin_token": data[field]}
    return data


def check_length(value: SecretStr | str | None, variable: str) -> SecretStr | str | None:
    """``value`` if unset or at least :data:`MIN_ADMIN_TOKEN_CHARS` long, else ``ValueError``
    naming ``variable``."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text is not None and len(text) < MIN_ADMIN_TOKEN_CHARS:
        raise ValueError(f"{variable} is shorter than {MIN_ADMIN_TOKEN_CHARS} characters "
                         "(make one with: python -c 'import secrets; "
                         "print(secrets.token_urlsafe(32))')")
    return value
