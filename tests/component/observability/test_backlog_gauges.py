"""Every ``tm_<service>_db_backlog`` gauge says what is queued now, not what was queued when the
last event arrived (issue 18: ``tm_ingest_db_backlog`` stayed at 1 after every row was written)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from tm_common.bus import InMemoryBus
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.testing.factories import bar
from tm_ingest.config import IngestSettings
from tm_ingest.repository import MarketRepository
from tm_ingest.service import IngestService


async def test_ingest_backlog_returns_to_zero_once_the_rows_are_written(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}"
    await migrate_async(url)
    registry = CollectorRegistry()
    repo = MarketRepository(make_engine(url))
    svc = IngestService(IngestSettings(mode="off", database_url=url), InMemoryBus(), repo=repo,
                        registry=registry)
    gauge = lambda: registry.get_sample_value("tm_ingest_db_backlog")  # noqa: E731
    try:
        await svc.publisher.publish_bars([bar("BTCUSDT", 0), bar("BTCUSDT", 1)])
        assert gauge() == 1                       # one batch queued behind the stream
        await repo.drain()
        assert gauge() == 0, "the rows are written: the backlog gauge must say 0"
        async with repo.engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM bars"))).scalar_one() == 2
    finally:
        await repo.engine.dispose()


class Queue:
    """A write-behind repository's ``backlog`` (the gauge reads only that)."""
    backlog = 0


def regime_handler(repo):
    from tm_regime.domain.engine import RegimeConfig, RegimeEngine
    from tm_regime.handler import RegimeHandler
    from tm_regime.metrics import RegimeMetrics
    from tm_regime.models import RegimeModels
    from tm_regime.testing import FakeRegistry
    m = RegimeMetrics(CollectorRegistry())
    RegimeHandler(RegimeEngine(RegimeConfig(symbols=("BTCUSDT",))), RegimeModels(FakeRegistry()),
                  repo=repo, metrics=m)
    return m.db_backlog


def signal_handler(repo):
    from tm_signal.domain.engine import EngineConfig, SignalEngine
    from tm_signal.handler import SignalHandler
    from tm_signal.metrics import SignalMetrics
    from tm_signal.models import SignalModels
    from tm_signal.testing import FakeRegistry
    m = SignalMetrics(CollectorRegistry())
    SignalHandler(SignalEngine(EngineConfig(symbols=("BTCUSDT",))), SignalModels(FakeRegistry()),
                  repo=repo, metrics=m)
    return m.db_backlog


def sizer_handler(repo):
    from tm_sizer.domain.engine import SizerEngine, SizerParams
    from tm_sizer.handler import SizerHandler
    from tm_sizer.metrics import SizerMetrics
    from tm_sizer.policies import SizerPolicies
    from tm_sizer.testing import FakeRegistry
    m = SizerMetrics(CollectorRegistry())
    SizerHandler(SizerEngine(SizerParams(symbols=("BTCUSDT",))), SizerPolicies(FakeRegistry()),
                 repo=repo, metrics=m)
    return m.db_backlog


@pytest.mark.parametrize("build", [regime_handler, signal_handler, sizer_handler],
                         ids=["regime", "signal", "sizer"])
def test_handler_backlog_gauges_follow_the_queue(build):
    repo = Queue()
    gauge = build(repo)
    value = lambda: gauge.collect()[0].samples[0].value  # noqa: E731
    assert value() == 0
    repo.backlog = 3
    assert value() == 3
    repo.backlog = 0                   # the writer caught up, and no event has arrived since
    assert value() == 0
