"""``tm train --source db``: the trainer reads what ingest and ``tm backfill`` stored, and data
that grows moves the next training's cut-off and data hash (the issue's key test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tm_common.db import make_engine
from tm_common.history import BAR_INTERVAL_MS, load_bars
from tm_common.models.registry import ModelRegistry
from tm_common.testing.databases import migrated_engine
from tm_common.testing.market_db import store_history
from tm_trainer.data import load_inputs
from tm_trainer.pipeline import train
from tm_trainer.registry_ops import record
from tm_trainer.sources import default_train_end_ms
from tm_trainer.train_cli import _inputs

SYMS = ("BTCUSDT", "ETHUSDT")


async def _store(engine, directory, first: int, last: int) -> None:
    """Bars ``first..last-1`` (row indexes) of the random walk, and funding/DVOL up to them."""
    await store_history(engine, directory, SYMS, first, last)


async def test_new_bars_in_the_database_move_the_cut_off_and_the_data_hash(
        pg_url, random_walk_dir, small_config):
    async with migrated_engine(pg_url) as engine:
        registry = ModelRegistry(engine)
        cfg0 = small_config(None, instruments=SYMS)
        await _store(engine, random_walk_dir, 0, 1500)
        source, cfg, inputs = await _inputs(cfg0, engine, "auto", cut_off_given=False)
        assert source == "db" and inputs is not None
        last_open = load_bars("BTCUSDT", directory=random_walk_dir)[1499].open_time_ms
        assert cfg.train_end_ms == default_train_end_ms(last_open, cfg.purge_bars)
        assert cfg.train_end_ms == last_open + BAR_INTERVAL_MS * (1 - cfg.purge_bars)
        # the database gives exactly what the same rows give from the files
        files = load_inputs(SYMS, end_ms=cfg.train_end_ms, directory=random_walk_dir)
        assert inputs.data_hash() == files.data_hash()
        first = train(cfg, regime=False, inputs=inputs)
        out = await record(registry, first, promote=False)
        rec = await registry.get(out.registered[0])
        assert rec is not None and rec.data_hash == first.data_hash == inputs.data_hash()
        data = rec.params["data"]
        assert data["source"] == "db" and data["data_hash"] == rec.data_hash
        assert data["rows"]["BTCUSDT"]["bars"] == data["rows"]["ETHUSDT"]["bars"] == \
            1500 - cfg.purge_bars
        assert data["rows"]["BTCUSDT"]["funding"] > 0 and data["rows"]["DVOL/BTC"]["dvol"] > 0
        assert rec.params["train_end_ms"] == cfg.train_end_ms

        await _store(engine, random_walk_dir, 1500, 1800)       # a week of ingest, a backfill
        source2, cfg2, inputs2 = await _inputs(cfg0, engine, "db", cut_off_given=False)
        assert cfg2.train_end_ms == cfg.train_end_ms + 300 * BAR_INTERVAL_MS
        second = train(cfg2, regime=False, inputs=inputs2)
        assert second.data_hash != first.data_hash
        assert second.signal_version != first.signal_version
        out2 = await record(registry, second, promote=False)
        rec2 = await registry.get(out2.registered[0])
        assert rec2 is not None and rec2.params["data"]["rows"]["ETHUSDT"]["bars"] == \
            1800 - cfg.purge_bars
        assert rec2.params["train_end_ms"] > rec.params["train_end_ms"]

        # an explicit cut-off wins over the data's
        _, cfg3, inputs3 = await _inputs(replace_end(cfg0, cfg.train_end_ms), engine, "db",
                                         cut_off_given=True)
        assert cfg3.train_end_ms == cfg.train_end_ms and inputs3 is not None
        assert inputs3.data_hash() == inputs.data_hash()


def replace_end(cfg, end_ms):
    from dataclasses import replace
    return replace(cfg, train_end_ms=end_ms)


async def test_auto_falls_back_to_files_when_the_database_is_short(pg_url, small_config,
                                                                   random_walk_dir):
    async with migrated_engine(pg_url) as engine:
        await _store(engine, random_walk_dir, 0, 100)
        cfg0 = small_config(random_walk_dir, instruments=SYMS)
        source, cfg, inputs = await _inputs(cfg0, engine, "auto", cut_off_given=False)
        assert source == "files" and inputs is None
        last = load_bars("ETHUSDT", directory=random_walk_dir)[-1].open_time_ms
        assert cfg.train_end_ms == default_train_end_ms(last, cfg.purge_bars)


@pytest.mark.parametrize("args, message, code", [
    (["--source", "db"], "the database holds no ETHUSDT bars", 1),
    (["--source", "csv"], "--source must be one of", 2)])
def test_source_errors_are_one_line(pg_url, tmp_path, args, message, code):
    env = {**os.environ, "TM_DATABASE_URL": pg_url, "TM_DATA_DIR": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "tm_trainer", "--fast", "--instruments", "ETHUSDT",
                        "--no-publish", "--no-progress", *args], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == code, p.stdout + p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
    assert json.dumps(p.stderr.strip().splitlines()[-1]).startswith('"error:')


async def test_weekly_update_continues_production_on_the_newer_database_rows(
        pg_url, random_walk_dir, small_config):
    from tm_trainer.update import train_update

    async with migrated_engine(pg_url) as engine:
        registry = ModelRegistry(engine)
        cfg0 = small_config(None, instruments=SYMS)
        await _store(engine, random_walk_dir, 0, 1600)
        _, cfg, inputs = await _inputs(cfg0, engine, "db", cut_off_given=False)
        base = train(cfg, regime=False, inputs=inputs)
        await record(registry, base, promote=False)
        await registry.promote(base.signal_version, "test: production to update")
        await _store(engine, random_walk_dir, 1600, 2400)
        _, cfg2, inputs2 = await _inputs(cfg0, engine, "db", cut_off_given=False)
        prod = await registry.production("signal")
        assert prod is not None
        upd = train_update(cfg2, prod.bundle(), inputs=inputs2)
        assert upd.parent_version == base.signal_version
        assert upd.params["data"]["source"] == "db"
        assert upd.params["data"]["rows"]["BTCUSDT"]["bars"] == 2400 - cfg.purge_bars
        assert upd.params["train_end_ms"] == cfg.train_end_ms + 800 * BAR_INTERVAL_MS
        assert upd.data_hash != base.data_hash


def test_tm_train_defaults_to_the_database_and_records_its_data(pg_url, random_walk_dir, tmp_path):
    import asyncio

    async def fill():
        async with migrated_engine(pg_url) as engine:
            await _store(engine, random_walk_dir, 0, 2400)
    asyncio.run(fill())
    env = {**os.environ, "TM_DATABASE_URL": pg_url, "TM_DATA_DIR": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "tm_trainer", "--fast", "--instruments", "ETHUSDT",
                        "--windows", "2", "--no-publish", "--no-progress", "--no-regime"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "source auto: db" in p.stdout and "data: db (" in p.stdout

    async def newest():
        engine = make_engine(pg_url)
        try:
            return (await ModelRegistry(engine).list("signal"))[0]
        finally:
            await engine.dispose()
    rec = asyncio.run(newest())
    last_open = load_bars("ETHUSDT", directory=random_walk_dir)[-1].open_time_ms
    assert rec.params["train_end_ms"] == default_train_end_ms(last_open, 200)
    assert rec.params["data"]["rows"]["ETHUSDT"]["bars"] == 2400 - 200
    assert rec.params["data"]["data_hash"] == rec.data_hash
