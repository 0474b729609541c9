"""``tm train rl --source``: the SAC policy's walk-forward reads what ingest and ``tm backfill``
stored, and bars added to the database change its data hash, its OOS cache key and the rows the
registry records. The database is seeded from the shipped CSVs; the walk-forward is shrunk
(10 trees, 100-bar windows) and the SAC run is one step, so each test takes seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch not installed (trainer extra)")
pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed")

from tm_common.db import make_engine
from tm_common.history import load_bars
from tm_common.models.registry import ModelRegistry
from tm_common.testing.databases import migrated_engine
from tm_common.testing.market_db import store_history
from tm_trainer.rl.cache import cache_key, key_for, load_or_build
from tm_trainer.rl.inputs import bars_needed, files_inputs, history_of, load_inputs
from tm_trainer.rl.oos import WalkForwardConfig, build_oos, load_history
from tm_trainer.rl.oos import data_hash as oos_hash
from tm_trainer.rl.train import TrainConfig, register, train_and_validate

SYMS = ["BTCUSDT", "ETHUSDT"]
WF = WalkForwardConfig(first_test_bar=500, test_bars=100, purge_bars=50, n_estimators=10,
                       max_depth=2)
CFG = TrainConfig(phase1_steps=0, phase2_steps=1, learning_starts=10, batch_size=8,
                  net_arch=(8, 8), val_windows=1, wf=WF)
NEED = bars_needed(WF, CFG.val_windows)            # 500 + 2 windows of 100


async def _run(engine, url: str, cache_dir, log) -> tuple:
    inputs = await load_inputs(engine, "auto", SYMS, NEED, None, log)
    data = load_or_build(SYMS, WF, cache_dir=cache_dir, inputs=inputs)
    res = train_and_validate(data, CFG, data_info=inputs.data_info())
    await register(url, res, CFG, promote=False)
    e = make_engine(url)
    try:
        rec = await ModelRegistry(e).get(res.version)
    finally:
        await e.dispose()
    assert rec is not None
    return inputs, res, rec


async def test_bars_added_to_the_database_change_the_rl_data_hash_cache_key_and_rows(
        db_url, tmp_path):
    async with migrated_engine(db_url) as engine:
        said: list[str] = []
        cache = tmp_path / "cache"
        await store_history(engine, None, SYMS, 0, 1000)          # the shipped CSVs' first rows
        inputs, res, rec = await _run(engine, db_url, cache, said.append)
        assert said == [f"source auto: db (the database holds >= {NEED} bars of every "
                        "instrument)"]
        assert inputs.source == "db" and rec.data_hash == res.data_hash
        data = rec.params["data"]
        assert data["source"] == "db" and data["data_hash"] == inputs.data_hash()
        assert data["rows"]["BTCUSDT"]["bars"] == data["rows"]["ETHUSDT"]["bars"] == 1000
        assert data["rows"]["ETHUSDT"]["funding"] > 0
        assert rec.params["wf"] == json.loads(json.dumps(CFG.to_dict()["wf"]))
        assert [p.name for p in cache.iterdir()] == [
            f"rl_oos_{key_for(SYMS, WF, None, inputs)}.npz"]

        await store_history(engine, None, SYMS, 1000, 1200)       # a backfill, a week of ingest
        inputs2, res2, rec2 = await _run(engine, db_url, cache, said.append)
        assert inputs2.data_hash() != inputs.data_hash()
        assert key_for(SYMS, WF, None, inputs2) != key_for(SYMS, WF, None, inputs)
        assert len(list(cache.iterdir())) == 2                    # rebuilt, not the stale cache
        assert res2.data_hash != res.data_hash and res2.version != res.version
        assert rec2.params["data"]["rows"]["ETHUSDT"]["bars"] == 1200
        assert rec2.params["data"]["data_hash"] == inputs2.data_hash()
        assert res2.data["last_bar_ms"] > res.data["last_bar_ms"]


async def test_the_database_gives_the_walk_forward_exactly_what_the_same_files_give(
        pg_url, random_walk_dir):
    async with migrated_engine(pg_url) as engine:
        await store_history(engine, random_walk_dir, SYMS, 0, 2400)
        db = await load_inputs(engine, "db", SYMS, NEED, None, lambda s: None)
    files = files_inputs(SYMS, random_walk_dir)
    assert db.source == "db" and files.source == "files"
    # the store holds DVOL days before the newest bar's close (as ingest would); so do these
    assert files.dvol is not None
    known = files.dvol["timestamp"] < load_bars("BTCUSDT", directory=random_walk_dir)[-1].close_time_ms
    files = replace(files, dvol={k: v[known] for k, v in files.dvol.items()})
    assert db.data_hash() == files.data_hash() and db.row_counts() == files.row_counts()
    from_db, from_files = history_of(db), history_of(files)
    for sym in SYMS:
        for part in ("bars", "funding", "dvol"):
            a, b = from_db[sym][part], from_files[sym][part]
            assert a.keys() == b.keys()
            for col in a:
                assert a[col].dtype == b[col].dtype and np.array_equal(a[col], b[col]), (sym, col)


async def test_auto_falls_back_to_files_saying_why_and_db_refuses_a_short_database(db_url):
    async with migrated_engine(db_url) as engine:
        said: list[str] = []
        await store_history(engine, None, SYMS, 0, 300)
        got = await load_inputs(engine, "auto", SYMS, NEED, None, said.append)
        assert got.source == "files"
        assert got.row_counts()["BTCUSDT"]["bars"] == len(load_bars("BTCUSDT"))
        assert said == [f"source auto: files (the database holds too few bars (BTCUSDT 300, "
                        f"ETHUSDT 300; {NEED} needed))"]
        from tm_trainer.data import DataError
        with pytest.raises(DataError, match="too few bars .* `tm backfill --since"):
            await load_inputs(engine, "db", SYMS, NEED, None, said.append)


def test_source_files_is_unchanged(tmp_path, random_walk_dir):
    """The files path keys the cache on the files' bytes and builds what it always built."""
    inputs = files_inputs(SYMS, str(random_walk_dir))
    assert key_for(SYMS, WF, str(random_walk_dir), inputs) == \
        cache_key(SYMS, WF, str(random_walk_dir))
    data = load_or_build(SYMS, WF, history_dir=str(random_walk_dir), cache_dir=tmp_path,
                         inputs=inputs)
    assert oos_hash(data) == oos_hash(build_oos(load_history(SYMS, str(random_walk_dir)), WF))
    assert [p.name for p in tmp_path.iterdir()] == [
        f"rl_oos_{cache_key(SYMS, WF, str(random_walk_dir))}.npz"]
    assert inputs.data_info()["rows"]["ETHUSDT"] == {"bars": 2400, "funding": 1200}


RL = [sys.executable, "-m", "tm_trainer.rl", "--symbols", "ETHUSDT", "--val-windows", "1",
      "--phase1-steps", "0", "--phase2-steps", "1", "--no-publish"]


def _env(url: str, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    return {**env, "TM_DATABASE_URL": url, "TM_DATA_DIR": str(tmp_path)}


@pytest.mark.parametrize("args, message, code", [
    (["--source", "db"], "the database holds no ETHUSDT bars: fill it with `tm backfill", 1),
    (["--source", "csv"], "--source must be one of auto, db, files, not 'csv'", 2)])
def test_rl_source_errors_are_one_line(pg_url, tmp_path, args, message, code):
    p = subprocess.run([*RL, *args], env=_env(pg_url, tmp_path), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == code, p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], p.stderr


@pytest.mark.timeout(600)
def test_tm_train_rl_defaults_to_the_database_and_records_its_data(pg_url, tmp_path):
    import asyncio

    n = 3000                     # the default walk-forward: 2600 + 2 windows of 180 bars needed

    async def fill():
        async with migrated_engine(pg_url) as engine:
            await store_history(engine, None, ["ETHUSDT"], 0, n)
    asyncio.run(fill())
    report = tmp_path / "report.json"
    p = subprocess.run([*RL, "--report", str(report), "--no-promote"],
                       env=_env(pg_url, tmp_path), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "source auto: db (the database holds >= 2960 bars of every instrument)" in p.stdout
    assert "data: db (ETHUSDT 3000 bars)" in p.stdout
    rep = json.loads(report.read_text())
    assert rep["data"]["source"] == "db" and rep["data"]["rows"]["ETHUSDT"]["bars"] == n

    async def record():
        engine = make_engine(pg_url)
        try:
            return await ModelRegistry(engine).get(rep["version"])
        finally:
            await engine.dispose()
    rec = asyncio.run(record())
    assert rec is not None and rec.kind == "rl" and rec.stage == "candidate"
    assert rec.params["data"] == rep["data"]
    assert rec.data_hash == rep["data_hash"]
