"""Every package of the project pins OpenBLAS's kernels before numpy or scipy loads it, so the
same lock fits the same models on every x86-64 machine (``tm_common``'s docstring). Each case is
a fresh interpreter that imports one package, then numpy and scipy, and asks OpenBLAS (through
threadpoolctl) which kernels it loaded. Without the pin this machine's OpenBLAS loads its own
(Haswell's on an AVX2 machine), so a package that loses it fails here."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the pin is for x86-64 (other architectures keep OpenBLAS's choice)")

PACKAGES = ("tm_common", "tm_app", "tm_trainer", "tm_exchange_sim", "tm_executor", "tm_ingest",
            "tm_portfolio", "tm_regime", "tm_risk", "tm_signal", "tm_sizer")

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
import numpy, scipy.linalg
from threadpoolctl import threadpool_info
print(json.dumps(sorted({i.get("architecture") for i in threadpool_info()
                         if i.get("internal_api") == "openblas"})))
"""


def kernels(package: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", PROBE, package], env={**clean, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_the_package_first_pins_openblas_to_prescott(package):
    assert kernels(package) == kernels("json", OPENBLAS_CORETYPE="Prescott")


def test_a_coretype_set_by_the_user_wins():
    assert kernels("tm_common", OPENBLAS_CORETYPE="Nehalem") == kernels(
        "json", OPENBLAS_CORETYPE="Nehalem")
