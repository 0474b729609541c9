"""The report says whether intra-bar marks and the executor's venue stop were on: off on recorded
bars (replay, backtest), on with the poll interval and the stop's loss in paper; ``tm paper``
runs ingest with its marks on and the executor with its venue stop."""

from datetime import UTC, datetime

from tm_app.paper_mesh import PaperConfig, specs
from tm_app.paper_report import run_doc
from tm_app.record import RunRecord
from tm_app.report.html import (
    INTRABAR_KEY,
    VENUE_STOP_KEY,
    build_summary,
    intrabar_marks,
    venue_stop,
)


def test_the_line_for_each_kind_of_run():
    assert intrabar_marks("mesh replay (processes, exchange sim)") == "off (replay)"
    assert intrabar_marks("backtest (in-process)") == "off (backtest)"
    assert intrabar_marks("paper", 60.0) == "on, every 60 s"
    assert intrabar_marks("paper", 15) == "on, every 15 s"
    assert intrabar_marks("paper", 0.0) == "off (TM_INGEST_MARK_POLL_S=0)"
    assert intrabar_marks("paper") == "not recorded"
    assert venue_stop("mesh replay (processes, exchange sim)") == "off (replay)"
    assert venue_stop("backtest (in-process)") == "off (backtest)"
    assert venue_stop("paper", 0.1) == "on: a position that lost 10% of equity"
    assert venue_stop("paper", 0.0) == "off (TM_EXECUTOR_VENUE_STOP_LOSS=0)"
    assert venue_stop("paper") == "not recorded"


def test_the_summary_meta_carries_it_and_a_caller_may_say_it():
    rec = RunRecord()
    s = build_summary(rec, initial_equity=100_000.0, meta={"mode": "backtest (in-process)"})
    assert s["meta"][INTRABAR_KEY] == "off (backtest)"
    assert s["meta"][VENUE_STOP_KEY] == "off (backtest)"
    s = build_summary(rec, initial_equity=100_000.0,
                      meta={"mode": "paper", INTRABAR_KEY: "on, every 60 s"})
    assert s["meta"][INTRABAR_KEY] == "on, every 60 s"


def test_paper_runs_ingest_with_marks_on_and_records_the_interval(tmp_path):
    cfg = PaperConfig(redis_url="redis://127.0.0.1:6379/0", database_url="sqlite+aiosqlite:///x",
                      paper_dir=tmp_path, namespace="tmpaper:x:",
                      market_rest_url="https://api.bybit.com",
                      market_ws_url="wss://stream.bybit.com/v5/public/linear",
                      deribit_url="https://www.deribit.com", symbols=("BTCUSDT",))
    env = {s.name: s.env for s in specs(cfg)}
    assert float(env["ingest"]["TM_INGEST_MARK_POLL_S"]) == 60.0
    assert env["ingest"]["TM_MODE"] == "live"
    doc = run_doc(cfg, datetime(2026, 1, 1, tzinfo=UTC))
    assert doc["mark_poll_s"] == 60.0
    assert intrabar_marks("paper", doc["mark_poll_s"]) == "on, every 60 s"
    assert float(env["executor"]["TM_EXECUTOR_VENUE_STOP_LOSS"]) == doc["venue_stop_loss"] == 0.1
