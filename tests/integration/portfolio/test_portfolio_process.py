"""The portfolio service as a real process on Redis and the database: handles published bars and
fills, publishes one snapshot per bar time, upserts fills and snapshots, serves /status and
/metrics (promtool-clean) and exits 0 on SIGTERM. (Restart from the saved state is covered on
the in-memory bus in tests/component/portfolio: a second process start costs too much here.)"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import httpx
import sqlalchemy as sa
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import EXEC_REPORT, MD_BAR, PORTFOLIO_SNAPSHOT
from tm_common.db import make_engine
from tm_common.db.tables import fills as fills_table
from tm_common.db.tables import portfolio_snapshots as snaps_table
from tm_common.testing.redis import free_port
from tm_portfolio.testing import bar_env, close_ns, fill_env, make_fill, open_ms

SYMS = ("BTCUSDT", "ETHUSDT")
BASE = 1_000 + uuid.uuid4().int % 5_000 * 10   # bar indexes no other test run uses


def start(env, log_path):
    log = open(log_path, "ab")  # noqa: SIM115 - closed by stop()
    p = subprocess.Popen([sys.executable, "-m", "tm_portfolio"], env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    return p, log


def wait_status(port, ok, log_path, timeout_s=40.0):
    deadline, status = time.time() + timeout_s, None
    while time.time() < deadline:
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).json()
            if ok(status["extra"]):
                return status
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"status not reached: {status}\n{log_path.read_text()[-3000:]}")


def stop(p, log):
    p.terminate()
    try:
        p.wait(20)
    finally:
        log.close()
    assert p.returncode == 0


async def publish(redis_url, namespace, entries):
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    for stream, env in entries:
        await bus.publish(stream, env)
    await bus.close()


async def stream(redis_url, namespace, name):
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    rows = await bus.entries(name)
    await bus.close()
    return rows


def bars(i, prices):
    return [(MD_BAR, bar_env(s, BASE + i, p)) for s, p in zip(SYMS, prices, strict=True)]


def test_process_snapshots_and_persists(redis_url, namespace, database_url, tmp_path):
    port, log_path = free_port(), tmp_path / "portfolio.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update({"TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace,
                "TM_DATABASE_URL": database_url, "TM_HTTP_PORT": str(port),
                "TM_DATA_DIR": str(tmp_path), "TM_SYMBOLS": ",".join(SYMS),
                "TM_PORTFOLIO_INITIAL_EQUITY_USDT": "50000", "TM_LAG_POLL_INTERVAL_S": "0.2"})
    tag = uuid.uuid4().hex[:8]
    f1 = make_fill(f"{tag}-1", "BTCUSDT", "Buy", "0.5", "30000", "8.25")
    f2 = make_fill(f"{tag}-2", "ETHUSDT", "Sell", "2", "2000", "2.2")
    t0, t1, t2 = (open_ms(BASE + i) for i in range(3))
    p, log = start(env, log_path)
    try:
        wait_status(port, lambda x: "equity" in x, log_path)
        asyncio.run(publish(redis_url, namespace, bars(0, ("30000", "2000"))))
        wait_status(port, lambda x: x["last_snapshot_bar_ms"] == t0, log_path)
        asyncio.run(publish(redis_url, namespace,
                            [(EXEC_REPORT, fill_env(f, close_ns(BASE))) for f in (f1, f2)]
                            + bars(1, ("31000", "1900"))))
        st = wait_status(port, lambda x: x["last_snapshot_bar_ms"] == t1 and x["db"]["backlog"] == 0
                         and x["db"]["written"] >= 4, log_path)["extra"]
        # BTC +0.5 × 1000, ETH short 2 × 100 = +700; fees 10.45
        assert Decimal(st["equity"]) == Decimal(50000) + 700 - Decimal("10.45")
        assert st["positions"]["BTCUSDT"]["qty"] == "0.5"
        assert st["positions"]["ETHUSDT"]["qty"] == "-2"
        assert st["statistics"]["snapshots"] == 2
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert "tm_portfolio_equity_usdt 50689.55" in metrics
        assert 'tm_portfolio_position_qty{instrument="ETHUSDT"} -2.0' in metrics
        promtool = shutil.which("promtool")
        if promtool is not None:
            check = subprocess.run([promtool, "check", "metrics"], input=metrics.encode(),
                                   capture_output=True, check=False, timeout=30)
            assert check.returncode == 0 and not check.stdout.strip() and \
                not check.stderr.strip(), check.stdout + check.stderr
        asyncio.run(publish(redis_url, namespace, bars(2, ("29000", "1900"))))
        st = wait_status(port, lambda x: x["last_snapshot_bar_ms"] == t2 and x["db"]["backlog"] == 0
                         and x["db"]["written"] >= 5, log_path)["extra"]
        assert Decimal(st["equity"]) == Decimal("50689.55") - 1000
        assert st["drawdown"] > 0
    finally:
        stop(p, log)

    snaps = [json.loads(f["body"]) for _, f in asyncio.run(stream(redis_url, namespace,
                                                                  PORTFOLIO_SNAPSHOT))]
    assert [s["bar_time_ms"] for s in snaps] == [t0, t1, t2]
    assert [s["equity"] for s in snaps] == ["50000", "50689.55", "49689.55"]

    async def db_rows():
        engine = make_engine(database_url)
        async with engine.connect() as conn:
            fills = (await conn.execute(sa.select(fills_table.c.exec_id, fills_table.c.qty,
                                                  fills_table.c.fee)
                                        .where(fills_table.c.exec_id.like(f"{tag}-%")))).all()
            rows = (await conn.execute(sa.select(snaps_table.c.bar_time_ms, snaps_table.c.equity,
                                                 snaps_table.c.positions)
                                       .where(snaps_table.c.bar_time_ms.in_([t0, t1, t2]))
                                       .order_by(snaps_table.c.bar_time_ms))).all()
            await conn.execute(fills_table.delete().where(fills_table.c.exec_id.like(f"{tag}-%")))
            await conn.execute(snaps_table.delete().where(snaps_table.c.bar_time_ms.in_([t0, t1, t2])))
            await conn.commit()
        await engine.dispose()
        return fills, rows
    fills, rows = asyncio.run(db_rows())
    assert sorted((r[0], r[1], r[2]) for r in fills) == [
        (f1.exec_id, Decimal("0.5"), Decimal("8.25")), (f2.exec_id, Decimal(2), Decimal("2.2"))]
    assert [(r[0], r[1]) for r in rows] == [(t0, Decimal(50000)), (t1, Decimal("50689.55")),
                                            (t2, Decimal("49689.55"))]
    assert rows[1][2] == [
        {"instrument": "BTCUSDT", "qty": "0.5", "avg_price": "30000", "mark_price": "31000",
         "unrealised_pnl": "500.0"},
        {"instrument": "ETHUSDT", "qty": "-2", "avg_price": "2000", "mark_price": "1900",
         "unrealised_pnl": "200"}]
