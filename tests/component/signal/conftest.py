"""Signal handler on the in-memory bus with the real consumer loop: helpers, an empty SQLite
model registry (``registry``), and a trainer run whose served signals are compared with its own
predictions (the families' served-equals-trained tests)."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.streams import MD_BAR, MD_DVOL, MD_FUNDING, SIGNAL_TL
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.events import DvolUpdated, Envelope, FundingRateUpdated, ModelPromoted
from tm_common.history import load_bars, load_dvol, load_funding
from tm_common.models.bundle import Bundle
from tm_common.models.registry import ModelRegistry
from tm_common.testing.factories import history_bar_event
from tm_quant.features import BAR_MS
from tm_signal.app import INPUTS
from tm_signal.domain.engine import EngineConfig, SignalEngine
from tm_signal.handler import SignalHandler
from tm_signal.models import SignalModels
from tm_signal.repository import BarHistory
from tm_trainer.config import TrainConfig
from tm_trainer.holdout import bundle_predictions
from tm_trainer.pipeline import train

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START = 5000


bar_env = history_bar_event      # a bar event exactly as ingest publishes it


def dvol_env(p) -> Envelope:
    d = DvolUpdated(currency="BTC", day_ms=p.day_ms, known_at_ms=p.known_at_ms,
                    value=float(p.close))
    return Envelope.root(d, key=f"BTC:{p.day_ms}", correlation_id=f"DVOL:BTC:{p.day_ms}",
                         ts_event_ns=p.known_at_ms * 1_000_000, ts_init_ns=1)


def funding_env(sym: str, f) -> Envelope:
    """A settled funding rate from the shipped file, as ingest's replay publishes it."""
    body = FundingRateUpdated(instrument=sym, settle_time_ms=f.time_ms, rate=f.rate_decimal,
                              source="replay")
    return Envelope.root(body, key=f"{sym}:{f.time_ms}", correlation_id=f"FUNDING:{sym}:{f.time_ms}",
                         ts_event_ns=f.time_ms * 1_000_000, ts_init_ns=1)


def promoted_env(version: str, kind: str = "signal") -> Envelope:
    body = ModelPromoted(kind=kind, version=version, reason="test")
    return Envelope.root(body, key=f"{kind}:{version}", correlation_id=f"model:{version}",
                         ts_event_ns=1, ts_init_ns=1)


def bar_times(start: int = START, n: int = 10) -> list[int]:
    return [b.open_time_ms for b in load_bars("BTCUSDT")[start:start + n]]


def first_ms(offset: int) -> int:
    return load_bars("BTCUSDT")[START + offset].open_time_ms


async def publish_lockstep(bus, start: int, n: int, seed: int = 0, dvol: bool = True,
                           funding: bool = True, consumer=None, late_funding: bool = False) -> None:
    """Like ingest's lockstep replay: DVOL and funding known by each bar close, then the bars of
    that time (shuffled within the time). With ``consumer``, it handles everything published
    before each bar time's bars and after them, as the lockstep's idle waits make the services
    do; without, everything is published first (the consumer then reads stream by stream, so
    bars may be handled before the side values of their time). ``late_funding``: a rate settled
    exactly at a bar time's close comes after that time's bars (a live poller that lags)."""
    rng = random.Random(seed)
    per = {s: load_bars(s)[start:start + n] for s in SYMS}
    points = load_dvol("BTC") if dvol else []
    rates = {s: load_funding(s) if funding else [] for s in SYMS}
    # Older side values change nothing (a warm-up reads them from history): start a week back.
    since = per["BTCUSDT"][0].open_time_ms - 7 * 86_400_000
    points = [p for p in points if p.known_at_ms >= since]
    rates = {s: [f for f in v if f.time_ms >= since] for s, v in rates.items()}
    fi = dict.fromkeys(SYMS, 0)
    di = 0
    for i in range(n):
        close = per["BTCUSDT"][i].open_time_ms + BAR_MS
        while di < len(points) and points[di].known_at_ms <= close:
            await bus.publish(MD_DVOL, dvol_env(points[di]))
            di += 1
        late = []
        for s in SYMS:
            while fi[s] < len(rates[s]) and rates[s][fi[s]].time_ms <= close:
                f = rates[s][fi[s]]
                fi[s] += 1
                if late_funding and f.time_ms == close:
                    late.append(funding_env(s, f))
                else:
                    await bus.publish(MD_FUNDING, funding_env(s, f))
        if consumer is not None:
            await consumer.run_until_idle()
        group = list(SYMS)
        rng.shuffle(group)
        for s in group:
            await bus.publish(MD_BAR, bar_env(s, per[s][i]))
        if consumer is not None:
            await consumer.run_until_idle()
        for env in late:
            await bus.publish(MD_FUNDING, env)


def make(bus, registry, *, name: str = "signal-0", history=True, **cfg):
    handler = SignalHandler(SignalEngine(EngineConfig(symbols=SYMS, **cfg)), SignalModels(registry),
                            history=BarHistory(None) if history else None)
    consumer = Consumer(bus, handler, group="signal", consumer=name,
                        streams=list(INPUTS), state_key="tm:state:signal",
                        clock=lambda: 7, retry_backoff_s=0.001, max_deliveries=3)
    return handler, consumer


async def signals(bus) -> list[dict]:
    return [{**f, "body": json.loads(f["body"])} for _, f in await bus.entries(SIGNAL_TL, 100_000)]


def content(sig: dict) -> tuple:
    """A signal without its measured timing, keyed by bar."""
    b = {k: v for k, v in sig["body"].items() if k != "inference_us"}
    return (b["instrument"], b["bar_time_ms"], tuple(sorted(b.items())))


@pytest.fixture
async def registry(tmp_path):
    """An empty model registry on a fresh SQLite database (a module may override it)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/tm.db"
    await migrate_async(url)
    engine = make_engine(url)
    yield ModelRegistry(engine)
    await engine.dispose()


def train_window(family: str, start: int, n: int, n_windows: int):
    """``family`` trained on the shipped data up to bar ``start`` (the fast configuration with
    ``n_windows`` windows, no regime model) → (train result, {symbol: {bar open ms: the trainer's
    P(up)}}) for the ``n`` bars from ``start``, from the bundle it made
    (:func:`tm_trainer.holdout.bundle_predictions`)."""
    window = bar_times(start, n)
    cfg = replace(TrainConfig(instruments=SYMS, train_end_ms=window[0]).fast(), n_windows=n_windows)
    result = train(cfg, regime=False, family=family)
    ds, rows, probs = bundle_predictions(Bundle.from_bytes(result.signal_bytes),
                                         end_ms=window[-1] + BAR_MS)
    assert ds.ts[rows].tolist() == window
    return result, {s: dict(zip(window, probs[s].tolist(), strict=True)) for s in SYMS}


async def serve_lockstep(registry, start: int, n: int) -> list[dict]:
    """The bodies of the signals a fresh handler serves with ``registry``'s production model on a
    lockstep replay of the ``n`` bars from ``start`` (the real consumer loop)."""
    bus = InMemoryBus()
    _, consumer = make(bus, registry)
    await publish_lockstep(bus, start, n, consumer=consumer)
    return [s["body"] for s in await signals(bus)]


def served_vs_trained(served: list[dict], expected: dict) -> dict[str, tuple[float, int]]:
    """{symbol: (max |served P(up) - trainer's P(up)|, direction flips)}, per symbol of
    ``expected`` (as :func:`train_window` gives it), once the served bars are exactly those."""
    out = {}
    for s, want in expected.items():
        got = {b["bar_time_ms"]: b for b in served if b["instrument"] == s}
        assert set(got) == set(want)
        dp = max(abs(got[t]["probability"] - p) for t, p in want.items())
        flips = sum(got[t]["direction"] != int(np.sign(p - 0.5)) for t, p in want.items())
        out[s] = (dp, flips)
    return out


__all__ = [
    "START",
    "SYMS",
    "InMemoryBus",
    "bar_env",
    "bar_times",
    "content",
    "dvol_env",
    "first_ms",
    "funding_env",
    "make",
    "promoted_env",
    "publish_lockstep",
    "serve_lockstep",
    "served_vs_trained",
    "signals",
    "train_window",
]
