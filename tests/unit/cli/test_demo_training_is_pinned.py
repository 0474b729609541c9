"""``tm demo`` trains (when the registry is empty) on the files up to 2025-01-01 (or the replay's
start if earlier), whatever the database holds and whatever ``tm train``'s own defaults become:
the replay stays out of sample. It trains the requested instruments from the given history."""

import io

import tm_app.cli as cli
import tm_app.demo as demo


class FakeTrainer:
    seen: list[list[str]] = []

    def __init__(self, cmd, **kw):
        FakeTrainer.seen.append(cmd)
        self.stderr = io.StringIO("")

    def wait(self):
        return 0


def _train(monkeypatch, **kw) -> list[str]:
    async def no_models(url, kind="signal"):
        return False
    FakeTrainer.seen = []
    monkeypatch.setattr(demo, "has_models", no_models)
    monkeypatch.setattr(cli.subprocess, "Popen", FakeTrainer)
    cli._ensure_models("sqlite+aiosqlite:///x.db", fast=True, **kw)
    (cmd,) = FakeTrainer.seen
    return cmd


def test_demo_trains_on_files_with_the_fixed_cut_off(monkeypatch):
    cmd = _train(monkeypatch)
    assert cmd[cmd.index("--source") + 1] == "files"
    assert cmd[cmd.index("--train-end") + 1] == "2025-01-01" == demo.DEFAULT_START
    assert cmd[cmd.index("--instruments") + 1] == "BTCUSDT,ETHUSDT,SOLUSDT"
    assert "--fast" in cmd and "--history-dir" not in cmd


def test_demo_trains_the_requested_instruments_from_the_given_history(monkeypatch):
    cmd = _train(monkeypatch, symbols=("ZZZUSDT",), history_dir="/h",
                 start_ms=demo.parse_day_ms("2024-06-01"))
    assert cmd[cmd.index("--instruments") + 1] == "ZZZUSDT"
    assert cmd[cmd.index("--history-dir") + 1] == "/h"
    assert cmd[cmd.index("--train-end") + 1] == "2024-06-01"     # before the replay
