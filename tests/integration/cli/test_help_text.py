"""``tm --help`` as a user reads it: each command's help is rewrapped to the terminal, not cut
where the source's docstring line ends, and no text is swallowed as markup."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TM = str(Path(sys.executable).parent / "tm")


def _help(*args: str, columns: int = 100) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env["COLUMNS"] = str(columns)
    p = subprocess.run([TM, *args, "--help"], env=env, capture_output=True, text=True, timeout=60,
                       check=True)
    return p.stdout


def test_a_docstring_paragraph_is_rewrapped_to_the_terminal():
    text = _help("up")
    # the source breaks this docstring after "Every port is": the help must not
    assert re.search(r"Every port is checked first", text), text
    assert "<data dir>/admin-token" in text
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("args", [(), ("train",), ("models",), ("breaker",)])
def test_every_command_is_listed_on_lines_within_the_width(args):
    text = _help(*args, columns=80)
    assert "Commands:" in text and max(len(line) for line in text.splitlines()) <= 80, text


def test_shadow_help_keeps_its_angle_bracket_placeholders():
    assert "<namespace>shadow:<candidate>:" in re.sub(r"\s+", "", _help("shadow"))
