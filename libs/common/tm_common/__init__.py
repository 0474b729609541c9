"""Trade-Matrix's common library. Importing it pins OpenBLAS's kernels and numpy's loops (below), so
every package of the project imports it first (their ``__init__``), before anything loads numpy or scipy.

OpenBLAS (bundled with numpy and scipy) picks its kernels by the CPU it loads on, and kernels of
different vector widths round differently: the same lock trained a different model on an AVX2
machine than on the one the README's sample came from (an HMM, GARCH or calibration fit moves in
a late digit, a tree split flips). ``OPENBLAS_CORETYPE=Prescott`` (SSE3, every x86-64 has it)
and numpy's own loops held to AVX2 (``NPY_DISABLE_CPU_FEATURES``: its AVX-512 loops round
differently too) give the same figures on every x86-64 machine. Both replace what the
environment holds: a machine that exports ``OPENBLAS_CORETYPE=Haswell`` for every process (one
this project ran on does) trained yet another signal model through the README's own command.
Other architectures keep the libraries' kernels.

OpenBLAS also splits a large enough call between threads, as many as ``OPENBLAS_NUM_THREADS``
says (else ``OMP_NUM_THREADS``, else one per CPU, capped at the CPU count), and each split rounds
its own way: one thread instead of two trained other models on the same machine, so a machine
with more CPUs would too. ``OPENBLAS_NUM_THREADS=2`` on every architecture, replacing the
environment's value: the count every figure of this project was measured with (two-CPU machines),
on any machine with two CPUs or more. A one-CPU machine still runs one thread, and its
figures can differ in late digits.
"""

import os as _os
import platform as _platform

if _platform.machine().lower() in ("x86_64", "amd64"):
    _os.environ["OPENBLAS_CORETYPE"] = "Prescott"
    # numpy's own loops: its AVX-512 targets (exp, log, reductions) round differently from the
    # AVX2 ones, so an AVX-512 machine trained another model too; these are the dispatch targets
    # above AVX2 of the locked numpy (``numpy._core._multiarray_umath.__cpu_dispatch__``)
    _os.environ["NPY_DISABLE_CPU_FEATURES"] = "X86_V4 AVX512_ICL AVX512_SPR"

_os.environ["OPENBLAS_NUM_THREADS"] = "2"
