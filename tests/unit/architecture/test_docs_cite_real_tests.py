"""The design document's citations are true: every test file ``docs/ARCHITECTURE.md`` (and the
README) names exists, and every ``file::test`` names a test defined in that file, so the
invariants' list cannot silently point at a test that was renamed or removed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = ("docs/ARCHITECTURE.md", "README.md")
CITED = re.compile(r"(tests/[\w/]+?\.py)(?:::([\w\[\]-]+))?")


def citations() -> list[tuple[str, str, str | None]]:
    out = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        out += [(doc, m.group(1), m.group(2)) for m in CITED.finditer(text)]
    return out


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")}


def test_the_documents_cite_tests():
    assert len(citations()) > 50       # the pattern still finds the invariants' citations


@pytest.mark.parametrize(("doc", "path", "name"), citations(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_each_cited_test_exists(doc, path, name):
    file = ROOT / path
    assert file.is_file(), f"{doc} cites {path}, which does not exist"
    if name is not None:
        assert name.split("[")[0] in defined_tests(file), f"{doc} cites {path}::{name}: no such test"
