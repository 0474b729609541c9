"""Event factories and a numpy-only test policy for the sizer's tests and benchmark."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from tm_common.events import (
    BarClosed,
    BreakerStateChanged,
    Envelope,
    ModelPromoted,
    PortfolioSnapshotted,
    RegimeDetected,
    SignalGenerated,
)
from tm_common.models.bundle import Bundle, npz_bytes
from tm_common.testing import registry
from tm_quant.sizing.observation import OBS_DIM, OBS_SPEC

H4_MS = 4 * 3600 * 1000
T0_MS = 1_700_000_000_000 // H4_MS * H4_MS
LABELS = ("Bull", "Neutral", "Bear", "Crisis")


def bar_ms(i: int) -> int:
    return T0_MS + i * H4_MS


def _ts(i: int) -> int:
    return (bar_ms(i) + H4_MS) * 1_000_000


def signal_env(inst: str, i: int, *, p: float = 0.8, live_ic: float | None = 0.3,
               live_ic_n: int = 60, direction: int | None = None) -> Envelope:
    """A signal event; the default live IC (0.3 over 60 matured predictions) is significant."""
    d = (1 if p > 0.5 else -1 if p < 0.5 else 0) if direction is None else direction
    body = SignalGenerated(instrument=inst, bar_time_ms=bar_ms(i), direction=d, probability=p,
                           confidence=abs(2 * p - 1), live_ic=live_ic, live_ic_n=live_ic_n,
                           model_version="sig-test")
    return Envelope.root(body, key=f"sig:{inst}:{i}", correlation_id=f"{inst}:{bar_ms(i)}",
                         ts_event_ns=_ts(i), ts_init_ns=_ts(i))


def regime_env(inst: str, i: int, label: str = "Bull", vol: float = 0.01) -> Envelope:
    probs = [0.1, 0.1, 0.1, 0.1]
    probs[LABELS.index(label)] = 0.7
    body = RegimeDetected(instrument=inst, bar_time_ms=bar_ms(i), label=label,  # type: ignore[arg-type]
                          probabilities=(probs[0], probs[1], probs[2], probs[3]), volatility=vol,
                          kelly_fraction=0.5)
    return Envelope.root(body, key=f"reg:{inst}:{i}", correlation_id=f"{inst}:{bar_ms(i)}",
                         ts_event_ns=_ts(i), ts_init_ns=_ts(i))


def bar_env(inst: str, i: int, close: float) -> Envelope:
    c = Decimal(repr(round(close, 6)))
    body = BarClosed(instrument=inst, open_time_ms=bar_ms(i), close_time_ms=bar_ms(i) + H4_MS - 1,
                     open=c, high=c, low=c, close=c, volume=Decimal(1), source="replay")
    return Envelope.root(body, key=f"bar:{inst}:{i}", correlation_id=f"{inst}:{bar_ms(i)}",
                         ts_event_ns=_ts(i), ts_init_ns=_ts(i))


def breaker_env(to_state: str, n: int = 0, from_state: str = "CLOSED") -> Envelope:
    """Transition ``n``, stamped with the close of bar ``n - 1``: it rules bar ``n`` onwards."""
    body = BreakerStateChanged(from_state=from_state, to_state=to_state,  # type: ignore[arg-type]
                               trigger="manual_trip", reason="test", at_ms=T0_MS + n)
    return Envelope.root(body, key=f"brk:{n}:{to_state}", correlation_id=f"breaker:{n}",
                         ts_event_ns=_ts(n - 1), ts_init_ns=_ts(n - 1))


def snapshot_env(i: int, equity: str = "10000", drawdown: float = 0.0) -> Envelope:
    e = Decimal(equity)
    body = PortfolioSnapshotted(bar_time_ms=bar_ms(i), equity=e, cash=e, realised_pnl=Decimal(0),
                                unrealised_pnl=Decimal(0), fees=Decimal(0), funding=Decimal(0),
                                peak_equity=e, drawdown=drawdown)
    return Envelope.root(body, key=f"snap:{i}", correlation_id=f"portfolio:{bar_ms(i)}",
                         ts_event_ns=_ts(i), ts_init_ns=_ts(i))


def promoted_env(version: str, kind: str = "rl") -> Envelope:
    body = ModelPromoted(kind=kind, version=version, reason="test")  # type: ignore[arg-type]
    return Envelope.root(body, key=f"promoted:{version}", correlation_id=f"model:{version}",
                         ts_event_ns=_ts(0), ts_init_ns=_ts(0))


def random_actor_arrays(seed: int = 0, hidden: tuple[int, ...] = (16, 16),
                        bias: float = 0.0) -> dict[str, np.ndarray]:
    """A small random actor in the ``actor.npz`` layout; ``bias`` shifts ``mu`` (a large positive
    bias makes the policy go long nearly everywhere)."""
    rng = np.random.default_rng(seed)
    sizes = (OBS_DIM, *hidden, 1)
    out: dict[str, np.ndarray] = {}
    for k in range(len(sizes) - 1):
        out[f"w{k}"] = rng.normal(0, 0.3, (sizes[k + 1], sizes[k]))
        out[f"b{k}"] = rng.normal(0, 0.1, sizes[k + 1])
    out[f"b{len(sizes) - 2}"] = out[f"b{len(sizes) - 2}"] + bias
    out["activations"] = np.array(["relu"] * len(hidden) + ["tanh"])
    out["action_scale"] = np.ones(1)
    out["action_bias"] = np.zeros(1)
    return out


def policy_bundle(version: str = "rl-test", *, passed: bool = True, max_fraction: float = 0.25,
                  arrays: dict[str, np.ndarray] | None = None) -> Bundle:
    """An ``rl`` bundle around ``arrays`` (default: :func:`random_actor_arrays`)."""
    manifest = {"kind": "rl", "version": version, "obs_spec": list(OBS_SPEC),
                "actor": "actor.npz", "max_fraction": max_fraction,
                "gate": {"passed": passed, "rl_sharpe": 1.0 if passed else -1.0,
                         "kelly_sharpe": 0.0}}
    return Bundle(manifest=manifest, files={"actor.npz": npz_bytes(**(arrays or
                                                                      random_actor_arrays()))})


class FakeRegistry(registry.FakeRegistry):
    """In-memory :class:`tm_common.models.registry.ModelRegistry` stand-in for ``rl`` bundles
    (``production``/``get``; ``fail``, ``promote``, ``promote_later`` as
    :class:`tm_common.testing.registry.FakeRegistry`)."""

    def __init__(self) -> None:
        super().__init__("rl")

    def add(self, bundle: Bundle, production: bool = False) -> None:  # type: ignore[override]
        super().add(bundle.version, bundle.to_bytes(), bundle.kind, promote=production)
