"""The ingest service as a real process: lockstep replay of shipped history into Redis, bars and
funding upserted to the database, /status and /metrics served."""

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import sqlalchemy as sa
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, MD_FUNDING
from tm_common.db import make_engine
from tm_common.db.tables import bars as bars_table
from tm_common.db.tables import funding as funding_table
from tm_common.history import load_bars, load_funding
from tm_common.testing.redis import free_port

START = 1_688_169_600_000            # 2023-07-01
END = START + 47 * 4 * 3600 * 1000   # 48 bar times
BAR_MS = 4 * 3600 * 1000
FUNDING_MS = 8 * 3600 * 1000


def test_replay_process_publishes_exact_history_and_writes_db(redis_url, namespace, database_url,
                                                               tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update({"TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_DATABASE_URL": database_url,
                "TM_HTTP_PORT": str(port), "TM_MODE": "replay", "TM_INGEST_REPLAY_START_MS": str(START),
                "TM_INGEST_REPLAY_END_MS": str(END), "TM_DATA_DIR": str(tmp_path)})
    log = open(tmp_path / "ingest.log", "wb")
    p = subprocess.Popen([sys.executable, "-m", "tm_ingest"], env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        status = None
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).json()
                if status["extra"].get("replay_done") and status["extra"]["db"]["backlog"] == 0 \
                        and status["extra"]["db"]["written"] >= 144:
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        assert status and status["extra"]["replay_done"], (tmp_path / "ingest.log").read_text()[-3000:]
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert 'tm_ingest_bars_published_total{instrument="BTCUSDT",source="replay"} 48.0' in metrics
    finally:
        p.terminate()
        p.wait(20)
        log.close()
    assert p.returncode == 0

    async def check():
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        got = [json.loads(f["body"]) for _, f in await bus.entries(MD_BAR, 10_000)]
        fund = [json.loads(f["body"]) for _, f in await bus.entries(MD_FUNDING, 10_000)]
        await bus.close()
        engine = make_engine(database_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(bars_table.c.instrument, bars_table.c.open_time_ms,
                                                 bars_table.c.close)
                                       .where(bars_table.c.open_time_ms.between(START, END)))).all()
            window = funding_table.c.settle_time_ms.between(START - FUNDING_MS, END + BAR_MS)
            frows = (await conn.execute(sa.select(funding_table.c.instrument,
                                                  funding_table.c.settle_time_ms,
                                                  funding_table.c.source).where(window))).all()
            await conn.execute(bars_table.delete().where(bars_table.c.open_time_ms.between(START, END)))
            await conn.execute(funding_table.delete().where(window))
            await conn.commit()
        await engine.dispose()
        return got, rows, fund, frows
    got, rows, fund, frows = asyncio.run(check())
    want_funding = sorted((s, f.time_ms) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
                          for f in load_funding(s) if START - FUNDING_MS <= f.time_ms <= END + BAR_MS)
    assert sorted((f["instrument"], f["settle_time_ms"]) for f in fund) == want_funding
    assert sorted((r[0], r[1]) for r in frows) == want_funding and {r[2] for r in frows} == {"replay"}
    expected = sorted(((s, b.open_time_ms, b.close) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
                       for b in load_bars(s, START, END)), key=lambda x: (x[1], x[0]))
    assert [(g["instrument"], g["open_time_ms"], g["close"]) for g in got] == expected
    from decimal import Decimal
    assert sorted((r[0], r[1], Decimal(r[2])) for r in rows) == \
        sorted((s, t, Decimal(c)) for s, t, c in expected)
