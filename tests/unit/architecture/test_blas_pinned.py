"""Every package of the project pins OpenBLAS's kernels and numpy's own loops before numpy or
scipy loads, so the same lock fits the same models on every x86-64 machine (``tm_common``'s
docstring). Each case is a fresh interpreter that imports one package, then numpy and scipy, and
asks OpenBLAS (through threadpoolctl) which kernels it loaded and numpy which of its dispatch
targets it enabled. Without the pin this machine's OpenBLAS loads its own (Haswell's on an AVX2
machine, SkylakeX's on an AVX-512 one) and numpy its AVX-512 loops where the CPU has them, so a
package that loses the pin fails here."""

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

THREADS_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
import numpy, scipy.linalg
from threadpoolctl import threadpool_info
print(json.dumps(sorted({i["num_threads"] for i in threadpool_info()
                         if i.get("internal_api") == "openblas"})))
"""


PINNED = ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_NUM_THREADS",
          "OMP_NUM_THREADS")

NUMPY_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
print(json.dumps([t for t in __cpu_dispatch__ if __cpu_features__.get(t)]))
"""


def _run(probe: str, package: str, env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in PINNED}
    out = subprocess.run([sys.executable, "-c", probe, package], env={**clean, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def numpy_targets(package: str, **env: str) -> list[str]:
    """The numpy dispatch targets enabled after importing ``package`` first."""
    return _run(NUMPY_PROBE, package, env)


def kernels(package: str, **env: str) -> list[str]:
    """The OpenBLAS kernels loaded after importing ``package`` first."""
    return _run(PROBE, package, env)


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_the_package_first_pins_openblas_to_prescott(package):
    assert kernels(package) == kernels("json", OPENBLAS_CORETYPE="Prescott")


@pytest.mark.parametrize("inherited", ["Haswell", "SkylakeX", ""])
def test_a_coretype_the_environment_exports_is_replaced(inherited):
    """A machine here exports ``OPENBLAS_CORETYPE=Haswell`` to every process: with it, the
    README's run trained another signal model, so the pin replaces it."""
    assert kernels("tm_common", OPENBLAS_CORETYPE=inherited) == kernels(
        "json", OPENBLAS_CORETYPE="Prescott")


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_the_package_first_holds_numpy_to_its_avx2_loops(package):
    enabled = numpy_targets(package)
    assert not {"X86_V4", "AVX512_ICL", "AVX512_SPR"} & set(enabled), enabled


def test_the_pin_names_every_numpy_target_above_avx2():
    """A numpy with another AVX-512 target (a lock refresh) must have it added to the pin."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    pinned = set(_pin_value("NPY_DISABLE_CPU_FEATURES").split())
    assert set(__cpu_dispatch__) - {"X86_V2", "X86_V3"} <= pinned, __cpu_dispatch__


def _pin_value(variable: str) -> str:
    probe = f"import os, tm_common; print(os.environ[{variable!r}])"
    clean = {k: v for k, v in os.environ.items() if k not in PINNED}
    return subprocess.run([sys.executable, "-c", probe], env=clean, capture_output=True,
                          text=True, timeout=60, check=True).stdout.strip()


@pytest.mark.parametrize("inherited", ["", "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"])
def test_numpy_targets_the_environment_sets_are_replaced(inherited):
    assert numpy_targets("tm_common", NPY_DISABLE_CPU_FEATURES=inherited) == numpy_targets(
        "json", NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR")


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("exported", [{"OPENBLAS_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "1"},
                                      {"OPENBLAS_NUM_THREADS": "8"}, {}])
def test_importing_the_package_first_runs_openblas_on_two_threads(package, exported):
    """One thread instead of two trained other models on the same machine (the README's sample
    run), so the count is pinned to the one every figure was measured with, whatever the
    environment exports; OpenBLAS caps it at the CPU count."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: OpenBLAS runs one thread whatever is asked")
    assert _run(THREADS_PROBE, package, exported) == [2]
    if exported.get("OPENBLAS_NUM_THREADS", exported.get("OMP_NUM_THREADS")) == "1":
        assert _run(THREADS_PROBE, "json", exported) == [1]   # the probe sees the difference
