"""Imports point one way: ``libs/`` (tm_common, tm_quant) → ``services/*`` and ``trainer/`` →
``apps/`` (tm_app). Every import counts: module level, inside a function, under ``try``, and
``importlib.import_module("...")`` with a literal name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LIBS = {"tm_common", "tm_quant"}
SERVICES = {p.name for p in ROOT.glob("services/*/tm_*") if p.is_dir()}
PROJECT = LIBS | SERVICES | {"tm_trainer", "tm_app"}


def allowed(owner: str) -> set[str]:
    """The project packages that code of ``owner`` may import."""
    if owner in LIBS:
        return set(LIBS)
    if owner in SERVICES or owner == "tm_trainer":
        return LIBS | {owner}
    if owner == "tm_app":
        return set(PROJECT)
    raise AssertionError(f"unknown package {owner}")


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in ``source``, dynamic ones included."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module",
                                                                           "__import__")))):
            out.append((node.lineno, node.args[0].value.split(".")[0]))
    return out


def violations(owner: str, files: list[Path]) -> list[str]:
    ok = allowed(owner)
    bad = []
    for f in files:
        for line, pkg in imported_packages(f.read_text()):
            if pkg in PROJECT and pkg not in ok:
                bad.append(f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}:{line}: "
                           f"{owner} imports {pkg}")
    return bad


def packages() -> dict[str, list[Path]]:
    roots = [*ROOT.glob("libs/*/tm_*"), *ROOT.glob("services/*/tm_*"), *ROOT.glob("trainer/tm_*"),
             *ROOT.glob("apps/tm_*")]
    return {r.name: sorted(r.rglob("*.py")) for r in roots if r.is_dir()}


def test_the_layout_is_what_this_test_expects():
    found = packages()
    assert {"tm_common", "tm_quant", "tm_trainer", "tm_app"} <= set(found)
    assert {"tm_ingest", "tm_regime", "tm_signal", "tm_sizer", "tm_risk", "tm_executor",
            "tm_portfolio", "tm_exchange_sim"} <= SERVICES
    assert not (ROOT / "libs" / "app").exists(), "the composition root lives in apps/"
    assert all(found.values())


@pytest.mark.parametrize("owner", sorted(packages()))
def test_no_import_points_upward_or_sideways(owner):
    assert violations(owner, packages()[owner]) == []


@pytest.mark.parametrize(("owner", "source"), [
    ("tm_common", "def f():\n    try:\n        from tm_app.cli import register\n    except ImportError:\n        pass\n"),
    ("tm_common", "import importlib\nimportlib.import_module('tm_risk.commands')\n"),
    ("tm_quant", "import tm_sizer.domain.engine\n"),
    ("tm_risk", "from tm_exchange_sim.matching.instruments import DEFAULT_INSTRUMENTS\n"),
    ("tm_trainer", "def f():\n    from tm_sizer.domain import engine\n"),
    ("tm_signal", "from tm_app import backtest\n"),
])
def test_the_check_finds_a_wrong_import(tmp_path, owner, source):
    """The check can fail: each of these is a violation it must report."""
    f = tmp_path / "m.py"
    f.write_text(source)
    assert len(violations(owner, [f])) == 1


def test_the_check_accepts_the_allowed_directions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from tm_common.events import Envelope\nimport tm_quant.garch\nimport numpy\n"
                 "from . import sibling\n")
    for owner in ("tm_common", "tm_risk", "tm_trainer", "tm_app"):
        assert violations(owner, [f]) == []
