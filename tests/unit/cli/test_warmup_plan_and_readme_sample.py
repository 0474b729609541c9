"""Pure parts of the warm-up (plan, trim) on the shipped history, the README sample block's
markers and normalization, and the redis-cli line's shape."""

from __future__ import annotations

import pytest
from tm_app.backtest import RunConfig
from tm_app.readme_sample import README, normalize, readme_block, words, write_block
from tm_app.record import RunRecord
from tm_app.redis_cli import redis_cli_line
from tm_app.warmup import TRADE_START_ENV, available_bars, plan, trade_start_ms, trim
from tm_common.events import Envelope
from tm_common.testing.factories import bar_event

BAR_MS = 4 * 3600_000
START = 1_735_689_600_000                      # 2025-01-01
FIRST_SHIPPED = 1_640_995_200_000              # 2022-01-01, the shipped files' first bar
T0 = 1_700_000_000_000 // BAR_MS * BAR_MS       # the factories' first bar


def _cfg(start: int = START) -> RunConfig:
    return RunConfig(start_ms=start, end_ms=start + 10 * BAR_MS, database_url="")


def test_plan_moves_the_start_and_tells_signal_where_trading_starts():
    cfg, w = plan(_cfg(), 30)
    assert (w.requested, w.bars, w.short) == (30, 30, False)
    assert cfg.start_ms == START - 30 * BAR_MS and cfg.end_ms == START + 10 * BAR_MS
    assert cfg.extra_env[TRADE_START_ENV] == str(START) and trade_start_ms(cfg) == START
    off, w0 = plan(_cfg(), 0)
    assert off == _cfg() and w0.bars == 0 and "off" in w0.describe()


def test_plan_uses_the_history_there_is_and_says_so():
    cfg, w = plan(_cfg(FIRST_SHIPPED + 12 * BAR_MS), 200)
    assert (w.bars, w.short) == (12, True) and cfg.start_ms == FIRST_SHIPPED
    assert "12 bars" in w.describe() and "shorter" in w.describe()
    _, none = plan(_cfg(FIRST_SHIPPED), 200)
    assert none.bars == 0 and "no history before --start" in none.describe()
    assert available_bars(("NOPEUSDT",), START, 10, None) == 0
    with pytest.raises(ValueError, match="--warmup-bars must be >= 0"):
        plan(_cfg(), -5)


def _bar(t: int) -> Envelope:
    return bar_event("BTCUSDT", (t - T0) // BAR_MS)


def test_trim_keeps_the_window_only():
    start = T0 + 5 * BAR_MS
    rec = RunRecord(streams={"md.bar": [_bar(start - BAR_MS), _bar(start), _bar(start + BAR_MS)]},
                    dead_letters={"md.bar": 2})
    out = trim(rec, start)
    assert [b.open_time_ms for b in out.bars] == [start, start + BAR_MS]
    assert out.dead_letters == {"md.bar": 2} and len(rec.bars) == 3     # the input is unchanged


def test_readme_has_the_sample_block_and_normalizing_it_changes_nothing():
    text = README.read_text()
    block = readme_block(text)
    assert any("buy & hold" in ln for ln in block) and any("warm-up:" in ln for ln in block)
    assert normalize("\n".join(block), "/nowhere") == block
    assert write_block(text, block) == text


def test_normalize_replaces_what_differs_between_runs_by_nature():
    out = normalize("/tmp/x/.tm/mesh/logs\n  replay: 30 bars published\n"
                    "streams, while it runs: redis-cli -p 41234 XREVRANGE tmrun:0a1b2c3d:md.bar"
                    "\nservices ready in 12.5s\nbar → order acknowledged: p50 3 ms\n", "/tmp/x")
    assert out == [".tm/mesh/logs", "streams, while it runs: redis-cli -p <port> XREVRANGE "
                   "tmrun:<id>:md.bar", "services ready in <n>s"]
    assert words(["a  b", "c"]) == ["a", "b", "c"]


def test_the_redis_cli_line_names_server_user_and_stream_never_the_password():
    assert redis_cli_line("redis://127.0.0.1:41234/0", "tm:").endswith(
        "-p 41234 XREVRANGE tm:md.bar + - COUNT 1")
    line = redis_cli_line("rediss://ops:s3cret@redis.example:6380/2", "tmrun:ab:")
    assert "s3cret" not in line and "--askpass" in line and "--user ops" in line
    assert "-h redis.example -p 6380 -n 2 --tls" in line
    with pytest.raises(ValueError, match="not a redis:// URL"):
        redis_cli_line("http://x", "tm:")
