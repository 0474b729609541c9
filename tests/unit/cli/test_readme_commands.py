"""The README is true about the `tm` command: every `tm …` it shows (inline or in a code block)
names a command that exists, and every option it shows is one that command accepts (checked
against `--help` of the real command tree, the one `.venv/bin/tm` runs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from tm_app.stack.main import app

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text()
    # the sample output's panel folds a long line inside its borders: read it unfolded
    unfolded = re.sub(r"[ \t]*│\n│[ \t]*", " ", text)
    found = [m.group(1) for m in re.finditer(r"`(tm [^`]+)`", unfolded)]
    in_block = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            for part in re.split(r"&&|;", line.split("#")[0]):
                if part.strip().startswith("tm "):
                    found.append(part.strip())
    out: list[str] = []
    for cmd in found:       # "tm breaker trip\|reset" / "tm models promote|rollback": each one
        cmd = cmd.replace("\\|", "|")
        words = cmd.split()
        alt = next((i for i, w in enumerate(words) if "|" in w and not w.startswith("-")), None)
        if alt is None or alt > 3:
            out.append(cmd)
            continue
        out += [" ".join([*words[:alt], choice, *words[alt + 1:]]) for choice in
                words[alt].split("|")]
    return sorted(set(out))


def is_group(cmd: Any) -> bool:
    return hasattr(cmd, "commands")


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The (click) command a README line names, and the words after its path."""
    cmd: Any = typer.main.get_command(app)
    i = 1
    while is_group(cmd) and i < len(words) and words[i] in cmd.commands:
        cmd = cmd.commands[words[i]]
        i += 1
    return cmd, words[i:]


def options_of(cmd: Any) -> set[str]:
    names = set()
    for p in cmd.params:
        names.update(getattr(p, "opts", []))
        names.update(getattr(p, "secondary_opts", []))
    return names


COMMANDS = readme_commands()


def test_the_readme_shows_commands():
    assert len(COMMANDS) > 25, COMMANDS


@pytest.mark.parametrize("line", COMMANDS)
def test_every_readme_command_and_option_exists(line):
    import shlex
    words = shlex.split(line.replace("…", ""))
    cmd, rest = resolve(words)
    assert not is_group(cmd) or not rest or rest[0].startswith("-"), \
        f"README: `{line}`: {rest[0]!r} is not a subcommand of `{' '.join(words[:len(words) - len(rest)])}`"
    shown = {w.strip("[]").split("=")[0] for w in rest if w.strip("[").startswith("--")}
    unknown = shown - options_of(cmd)
    assert not unknown, f"README: `{line}` shows options the command does not have: {unknown}"
    if is_group(cmd) or any(type(p).__name__.endswith("Argument") for p in cmd.params):
        return
    flags = {o for p in cmd.params if getattr(p, "is_flag", False) or getattr(p, "count", False)
             for o in (*p.opts, *getattr(p, "secondary_opts", []))}
    prev = None
    for w in rest:          # a word that is no option's value is an argument it does not take
        bare = w.strip("[]")
        if not bare.startswith("-") and (prev is None or prev in flags):
            raise AssertionError(f"README: `{line}`: {w!r} is an argument; the command takes "
                                 "none")
        prev = bare.split("=")[0] if bare.startswith("-") and "=" not in bare else None
