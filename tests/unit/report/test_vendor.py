"""The vendored uPlot: the files named in vendor/README.md with their hashes and licence, and
declared package data (so that an installed tm_app, the Docker image's, carries them)."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path

import tm_app.report

REPORT = Path(tm_app.report.__file__).parent
ROOT = Path(__file__).resolve().parents[3]


def test_vendored_files_match_the_hashes_in_the_readme():
    readme = (REPORT / "vendor" / "README.md").read_text()
    assert "uPlot 1.6.31" in readme and "MIT" in readme
    pinned = dict(re.findall(r"`([\w.]+)` \| `([0-9a-f]{64})`", readme))
    assert set(pinned) == {"uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in pinned.items():
        assert hashlib.sha256((REPORT / "vendor" / name).read_bytes()).hexdigest() == digest, name
    assert (REPORT / "vendor" / "uPlot.iife.min.js").read_text().startswith(
        "/*! https://github.com/leeoniya/uPlot (v1.6.31) */")
    assert "MIT License" in (REPORT / "vendor" / "uPlot.LICENSE").read_text()


def test_the_page_assets_are_package_data():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["tm_app.report"]
    assets = ["report.js", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css",
              "vendor/uPlot.LICENSE", "vendor/README.md"]
    for a in assets:
        assert (REPORT / a).is_file(), a
        assert any(fnmatch.fnmatch(a, g) for g in globs), f"{a} is not package data"
