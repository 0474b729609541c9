"""RL policies from the model registry (kind ``rl``), parsed once and cached by version.

Errors are translated for the consumer: a registry that does not answer (database down) is a
``TransientError`` (the event is retried); a bundle that is not a usable ``rl`` policy is a
:class:`BadPolicy` (permanent: a promotion of it is dead-lettered and the current policy stays).
Loading is numpy only: :class:`~tm_quant.sizing.actor.NumpyActor`, never torch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

from tm_common.errors import PermanentError, TransientError

from tm_sizer.domain.policy import KIND, PolicyFormatError, RLPolicy


class PolicySource(Protocol):
    """What the service needs of :class:`tm_common.models.registry.ModelRegistry`."""

    async def production(self, kind: str) -> Any: ...

    async def get(self, version: str) -> Any: ...


class BadPolicy(PermanentError):
    """A registry record whose bundle cannot be used as an RL policy."""


def parse(artifact: bytes) -> RLPolicy:
    """An :class:`RLPolicy` from bundle bytes. Raises :class:`BadPolicy`."""
    from tm_common.models.bundle import Bundle, BundleError

    try:
        b = Bundle.from_bytes(artifact)
        return RLPolicy.from_manifest(b.manifest, b.npz)
    except (BundleError, PolicyFormatError) as e:
        raise BadPolicy(f"rl bundle unusable: {e}") from e


class SizerPolicies:
    def __init__(self, source: PolicySource | None, cache: int = 4) -> None:
        self.source, self._size = source, cache
        self._cache: OrderedDict[str, RLPolicy] = OrderedDict()
        self.production_version: str | None = None
        self.production_checked = False
        self.last_error: str | None = None

    def cached(self, version: str) -> RLPolicy | None:
        return self._cache.get(version)

    def put(self, policy: RLPolicy) -> None:
        self._cache[policy.version] = policy
        self._cache.move_to_end(policy.version)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

    async def _call(self, what: str, coro) -> Any:
        try:
            rec = await coro
        except Exception as e:
            self.last_error = f"model registry unavailable: {type(e).__name__}: {str(e)[:200]}"
            raise TransientError(f"{what}: {self.last_error}") from e
        self.last_error = None
        return rec

    def _policy(self, rec: Any) -> RLPolicy:
        if getattr(rec, "kind", KIND) != KIND:
            raise BadPolicy(f"model {rec.version} is of kind {rec.kind!r}, not {KIND!r}")
        pol = self.cached(rec.version)
        if pol is None:
            if rec.artifact is None:
                raise BadPolicy(f"rl policy {rec.version} has no artifact")
            pol = parse(rec.artifact)
            if pol.version != rec.version:
                raise BadPolicy(f"registry version {rec.version} holds bundle {pol.version}")
            self.put(pol)
        return pol

    async def production(self) -> RLPolicy | None:
        """The production policy, or None (none promoted, or no registry)."""
        if self.source is None:
            self.production_checked, self.production_version = True, None
            return None
        rec = await self._call("production rl policy", self.source.production(KIND))
        self.production_checked = True
        self.production_version = None if rec is None else rec.version
        if rec is None:
            return None
        try:
            return self._policy(rec)
        except BadPolicy as e:
            self.last_error = str(e)
            raise

    async def get(self, version: str) -> RLPolicy | None:
        """Policy ``version`` (cached if parsed before), or None if the registry lacks it."""
        pol = self.cached(version)
        if pol is not None or self.source is None:
            return pol
        rec = await self._call(f"rl policy {version}", self.source.get(version))
        return None if rec is None else self._policy(rec)
