"""A shadow book's signals do not depend on the millisecond its own entries land in.

The book publishes a bar time's market events (DVOL and funding, then the bars) into its own
namespace and then drains its consumers. Entries of two streams added in the same millisecond
tie (Redis numbers each stream's entries from 0 in every millisecond), and a consumer handles a
tie in the order it lists its streams: the signal service lists ``md.bar`` first. So a bar added
in the same millisecond as the funding rate or DVOL value published just before it was handled
*before* it, and its features used the previous rate; whether that happened depended on where
the wall clock's millisecond ticked while the book published (SOLUSDT's realised IC moved in the
third decimal between two identical ``tm demo`` runs). Production never has the tie: its replay
waits until every consumer is idle after DVOL and funding before it publishes the bars.

Here the same market events are traded by two books whose entries get explicit ids: one gives
every entry of a batch the same millisecond (a fast publisher), one a millisecond of its own (a
slow one). Both are valid arrival timings; the signals, their realised IC and the trades must be
the same, and equal to the in-process backtest's signals (production's order). So must the
signals of a third book that gets every bar in a batch of its own, SOLUSDT's first (partial
batches, as ``flush_after_s`` cuts them; SOLUSDT's bar then waits in the signal service's aligner
for its BTCUSDT bar). The candidate is
a ``logistic`` model over the funding rate, DVOL and the BTC return, so that any input a bar
sees differently moves its probability (the tiny test boosters' splits never see a funding rate).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from tm_app.backtest import RunConfig, run_backtest
from tm_app.record import RunRecord
from tm_app.shadow.book import ShadowBook
from tm_app.shadow.config import ShadowSettings
from tm_app.shadow.mirror import MARKET_STREAMS, Batch
from tm_app.stats import signal_ic
from tm_common.bus.redis import RedisStreamsBus
from tm_common.db import make_engine
from tm_common.events import BarClosed
from tm_common.models.bundle import Bundle
from tm_common.models.registry import ModelRegistry
from tm_quant.features import FEATURE_NAMES
from tm_quant.garch import DEFAULT_GARCH_PARAMS

from .conftest import START, N, publish_market, window

CANDIDATE = "v-logistic"
#: (feature, mean, scale, coefficient): every one moves P(up) continuously.
COLUMNS = (("funding_rate", 1e-4, 1e-4, 0.6), ("dvol_level", 50.0, 10.0, 0.4),
           ("btc_ret_1", 0.0, 0.01, 0.3), ("ret_1", 0.0, 0.01, -0.3))


def _logistic_bundle(first_bar_ms: int) -> bytes:
    def npz(**arrays: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    arrays = npz(mean=np.array([c[1] for c in COLUMNS]), scale=np.array([c[2] for c in COLUMNS]),
                 coef=np.array([c[3] for c in COLUMNS]), intercept=np.zeros(1),
                 clip=np.array([5.0]))
    files, instruments = {}, {}
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        files[f"{sym}.npz"] = arrays
        instruments[sym] = {"model": f"{sym}.npz", "features": [c[0] for c in COLUMNS],
                            "garch": DEFAULT_GARCH_PARAMS.to_dict(), "first_bar_ms": first_bar_ms,
                            "prob_calibration": {"a": 1.0, "b": 0.0}}
    manifest = {"kind": "signal", "version": CANDIDATE, "horizon_bars": 6, "family": "logistic",
                "feature_names": list(FEATURE_NAMES), "instruments": instruments, "metrics": {}}
    return Bundle(manifest=manifest, files=files).to_bytes()


async def _register_candidate(db_url: str) -> None:
    from tm_common.history import load_bars

    engine = make_engine(db_url)
    await ModelRegistry(engine).register(
        "signal", CANDIDATE, _logistic_bundle(load_bars("BTCUSDT")[START - 250].open_time_ms),
        data_hash="test", features=[], params={"family": "logistic"}, seed=0,
        metrics={"gate_passed": False, "why": "test candidate"})
    await engine.dispose()


class PinnedIds:
    """Gives the book's market entries explicit ids: every entry of one batch in one
    millisecond (``same_ms``: a fast publisher), or each entry in a millisecond of its own."""

    def __init__(self, bus: RedisStreamsBus, *, same_ms: bool) -> None:
        self.bus, self.same_ms, self.original = bus, same_ms, bus.publish_raw
        self.ms = 1_000_000
        self.seq: dict[str, int] = {}                    # stream -> next sequence in self.ms
        bus.publish_raw = self.publish_raw               # type: ignore[method-assign]

    def next_batch(self) -> None:
        self.ms, self.seq = self.ms + 10, {}

    async def publish_raw(self, stream: str, fields: dict[Any, Any]) -> str:
        if stream not in MARKET_STREAMS:
            return await self.original(stream, fields)
        if not self.same_ms:
            self.ms, self.seq = self.ms + 1, {}
        seq = self.seq.get(stream, 0)
        self.seq[stream] = seq + 1
        eid: bytes = await self.bus.r.xadd(self.bus.key(stream), fields, id=f"{self.ms}-{seq}")
        return eid.decode()


def _cut_per_bar_reversed(batch: Batch) -> list[Batch]:
    """The same events cut as a slow production gives them: one batch a bar (partial ones, as
    ``flush_after_s`` cuts them), the instruments' bars in reverse order (SOLUSDT first, so its
    bar waits in the signal service's aligner for its BTCUSDT bar)."""
    side = [e for e in batch.events if not isinstance(e[1].body, BarClosed)]
    bars = [e for e in batch.events if isinstance(e[1].body, BarClosed)][::-1]
    if not bars:
        return [batch]
    return [Batch([*side, bars[0]], batch.bar_time_ms),
            *(Batch([b], batch.bar_time_ms) for b in bars[1:])]


async def _run(redis_url: str, source_ns: str, db_url: str, name: str, *, same_ms: bool,
               cut: bool = False) -> RunRecord:
    """The candidate's book over the published window; ``same_ms``: every entry of a batch in
    one millisecond, else each in its own; ``cut``: :func:`_cut_per_bar_reversed`."""
    settings = ShadowSettings.from_values(
        namespace=source_ns, candidate=CANDIDATE, database_url=db_url, redis_url=redis_url,
        flush_after_s=0.2, book_namespace=f"{source_ns}shadow:{name}:")
    bus = RedisStreamsBus(redis_url, prefix=settings.namespace_for(CANDIDATE))
    ids = PinnedIds(bus, same_ms=same_ms)
    source = RedisStreamsBus(redis_url, prefix=source_ns)
    engine = make_engine(db_url)
    book = ShadowBook(settings, bus=bus, source=source, registry=ModelRegistry(engine))
    await book.open()
    apply = book.apply

    async def apply_pinned(batch: Batch) -> None:
        for b in _cut_per_bar_reversed(batch) if cut else [batch]:
            ids.next_batch()
            await apply(b)

    book.apply = apply_pinned                        # type: ignore[method-assign]
    while await book.step(block_ms=300) or book.bar_times < N:
        pass
    rec = await book.record()
    await bus.close(), await source.close(), await engine.dispose()
    return rec


def _signals(rec: RunRecord) -> list[tuple[str, int, float, float]]:
    return sorted((s.instrument, s.bar_time_ms, s.probability, s.confidence)
                  for s in rec.signals)


def _same_ic(a: RunRecord, b: RunRecord) -> bool:
    x, y = signal_ic(a), signal_ic(b)
    return x.keys() == y.keys() and all(
        x[k] == y[k] or (math.isnan(x[k]) and math.isnan(y[k])) for k in x)


async def test_the_book_trades_the_same_however_its_entries_fall_in_milliseconds(
        redis_url, namespace, registry_url):
    start, end = window()
    cfg = RunConfig(start_ms=start, end_ms=end, database_url=registry_url)
    await publish_market(redis_url, namespace, cfg)
    await _register_candidate(registry_url)

    fast = await _run(redis_url, namespace, registry_url, "fast", same_ms=True)
    slow = await _run(redis_url, namespace, registry_url, "slow", same_ms=False)
    assert len(fast.signals) == len(slow.signals) == 3 * N
    assert _signals(fast) == _signals(slow)
    assert _same_ic(fast, slow)
    assert fast.trading_view() == slow.trading_view()

    # Cut into one batch a bar, SOLUSDT's first and in the millisecond of the funding before it:
    # the same signals (the aligner orders a bar time's bars; its trades may differ, since the
    # sizer then sees the instruments' signals in other bar-time batches).
    cut = await _run(redis_url, namespace, registry_url, "cut", same_ms=True, cut=True)
    assert _signals(cut) == _signals(slow) and _same_ic(cut, slow)

    # and all are what production's order gives: the backtest of the same model
    reg_engine = make_engine(registry_url)
    await ModelRegistry(reg_engine).promote(CANDIDATE, "test: production = the shadowed candidate")
    await reg_engine.dispose()
    backtest = await run_backtest(cfg)
    assert _signals(slow) == _signals(backtest) and _same_ic(slow, backtest)
