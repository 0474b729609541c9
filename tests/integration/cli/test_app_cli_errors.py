"""Bad arguments, missing data and unreachable Redis/database: one ``error:`` line on stderr, a
non-zero exit, never a traceback (the ``tm`` executable as a user runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TM = str(Path(sys.executable).parent / "tm")


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    e.update(TM_DATA_DIR=str(tmp_path / ".tm"), COLUMNS="60")   # narrow: an error must not wrap
    yield e
    left = list((tmp_path / ".tm").rglob("redis.json"))
    if left:                                   # stop it, then fail: a usage error starts nothing
        subprocess.run([TM, "down", "--redis"], env=e, cwd=tmp_path, capture_output=True,
                       timeout=60, check=False)
    assert not left, "an error path started an embedded Redis"


def tm(env, *args, cwd=None):
    return subprocess.run([TM, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def one_line_error(p, *fragments):
    assert p.returncode != 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("error:")]
    assert len(errors) == 1, p.stderr
    for f in fragments:
        assert f in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("args, code, fragments", [
    (["backtest", "--start", "yesterday"], 2, ["not a date", "'yesterday'"]),
    (["backtest", "--start", "2025-03-01", "--end", "2025-01-01"], 2, ["must be after"]),
    (["backtest", "--start", "2025-01-01", "--end", "2025-01-10", "--equity", "lots"], 2, ["lots"]),
    (["backtest", "--start", "2025-01-01", "--end", "2025-01-10", "--symbols", "DOGEUSDT"], 2,
     ["DOGEUSDT"]),
    (["backtest", "--start", "2025-01-01", "--end", "2025-01-10", "--symbols", "BTC-PERP"], 2,
     ["--symbols", "'BTC-PERP' is not a USDT perpetual"]),
    (["backtest", "--start", "2030-01-01", "--end", "2030-02-01"], 2, ["no shipped bars"]),
    (["demo", "--start", "2025-13-40"], 2, ["not a date"]),
    (["report", "/nonexistent/report"], 2, ["no report at"]),
])
def test_bad_arguments_and_missing_data(env, tmp_path, args, code, fragments):
    p = tm(env, *args, cwd=tmp_path)
    one_line_error(p, *fragments)
    assert p.returncode == code


def test_a_file_that_is_not_a_report(env, tmp_path):
    bad = tmp_path / "report.json"
    bad.write_text("{not json")
    one_line_error(tm(env, "report", str(bad)), "not a report")


def test_missing_history_folder_or_file_names_the_problem(env, tmp_path):
    one_line_error(tm(env, "backtest", "--history-dir", str(tmp_path / "nowhere")), "not a folder")
    (tmp_path / "hist").mkdir()
    one_line_error(tm(env, "backtest", "--history-dir", str(tmp_path / "hist")), "BTCUSDT")


def test_unreachable_redis(env, tmp_path):
    env["TM_REDIS_URL"] = "redis://:hunter2-secret@127.0.0.1:1/0"
    for args in (["demo", "--start", "2025-01-01", "--end", "2025-01-10"], ["streams"]):
        line = one_line_error(tm(env, *args, cwd=tmp_path), "Redis unreachable")
        assert "hunter2-secret" not in line


def test_unreachable_database(env, tmp_path):
    env["TM_REDIS_URL"] = os.environ.get("TM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    env["TM_DATABASE_URL"] = "postgresql+asyncpg://tm:hunter2-secret@127.0.0.1:1/tm"
    p = tm(env, "demo", "--start", "2025-01-01", "--end", "2025-01-10", cwd=tmp_path)
    line = one_line_error(p, "database")
    assert "hunter2-secret" not in p.stderr + p.stdout and "hunter2" not in line


def test_breaker_without_a_token_or_a_service(env, tmp_path):
    one_line_error(tm(env, "breaker", "trip"), "TM_ADMIN_TOKEN")
    env["TM_ADMIN_TOKEN"] = "t0ken-for-the-test-5e6f7a8b"
    line = one_line_error(tm(env, "breaker", "reset", "--reason", "drill", "--url",
                             "http://127.0.0.1:1"), "unreachable")
    assert "t0ken-for-the-test-5e6f7a8b" not in line
    one_line_error(tm(env, "breaker", "reset", "--reason", " "), "--reason must not be empty")
    one_line_error(tm(env, "kill", "--reason", ""), "--reason must not be empty")
    line = one_line_error(tm(env, "kill", "--reason", "drill", "--url", "http://127.0.0.1:1"),
                          "unreachable")
    assert "t0ken-for-the-test-5e6f7a8b" not in line
    for args in (["audit", "--kind", "nonsense"], ["audit", "--since", "someday"]):
        one_line_error(tm(env, *args), args[1])


def test_unknown_command_is_a_usage_error(env):
    p = tm(env, "frobnicate")
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_an_unshipped_symbol_with_bad_filters_or_without_data_names_what_is_wrong(env, tmp_path):
    """``tm backtest --symbols <other>``: a recorded ``<SYMBOL>_instrument.json`` that does not
    parse, or no history at all, is one ``error:`` line naming the file (it used to be a
    traceback, ``ValueError: no instrument specification``, from inside the simulator)."""
    from tm_common.testing.instrument_history import write_history

    hist = tmp_path / "hist"
    write_history(hist, "XRPUSDT", start_ms=1_735_689_600_000, n_bars=60)
    (hist / "XRPUSDT_instrument.json").write_text('{"symbol": "XRPUSDT", "lotSizeFilter": {}}')
    window = ["--start", "2025-01-01", "--end", "2025-01-05"]
    p = tm(env, "backtest", "--symbols", "XRPUSDT", "--history-dir", str(hist), *window)
    one_line_error(p, str(hist / "XRPUSDT_instrument.json"), "XRPUSDT")
    assert p.returncode == 2
    p = tm(env, "backtest", "--symbols", "ADAUSDT", "--history-dir", str(hist), *window)
    one_line_error(p, "history file not found", "ADAUSDT_4h.csv")
    assert p.returncode == 2


@pytest.mark.parametrize("args, variable, value, reason", [
    (["breaker", "trip"], "TM_ADMIN_TOKEN", "SECshort-tok3n", "shorter than 24 characters"),
    (["streams"], "TM_INTERVAL_MIN", "0", "greater than 0"),
    (["up"], "TM_MAX_DELIVERIES", "many", "valid integer"),
    (["models", "list"], "TM_INTERVAL_MIN", "-4", "greater than 0"),
])
def test_a_bad_setting_is_named_with_its_reason_never_its_value(env, tmp_path, args, variable,
                                                                   value, reason):
    """A settings error says which variable to fix and why, on one line, without the value."""
    env[variable] = value
    line = one_line_error(tm(env, *args, cwd=tmp_path), variable, reason)
    assert line.startswith("error: bad configuration: ")
    if variable == "TM_ADMIN_TOKEN":
        assert value not in line
