"""``tm demo`` trains (when the registry is empty) on the shipped files up to 2025-01-01, whatever
the database holds and whatever ``tm train``'s own defaults become: the replay stays out of sample."""

import subprocess

import tm_app.cli as cli
import tm_app.demo as demo


def test_demo_trains_on_files_with_the_fixed_cut_off(monkeypatch):
    seen = []

    async def no_models(url, kind="signal"):
        return False

    def fake_run(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)
    monkeypatch.setattr(demo, "has_models", no_models)
    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    cli._ensure_models("sqlite+aiosqlite:///x.db", fast=True)
    (cmd,) = seen
    assert cmd[cmd.index("--source") + 1] == "files"
    assert cmd[cmd.index("--train-end") + 1] == "2025-01-01" == demo.DEFAULT_START
    assert "--fast" in cmd
