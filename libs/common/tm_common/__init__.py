"""Trade-Matrix's common library. Importing it pins OpenBLAS's kernels (below), so every package
of the project imports it first (their ``__init__``), before anything loads numpy or scipy.

OpenBLAS (bundled with numpy and scipy) picks its kernels by the CPU it loads on, and kernels of
different vector widths round differently: the same lock trained a different model on an AVX2
machine than on the one the README's sample came from (an HMM, GARCH or calibration fit moves in
a late digit, a tree split flips). ``OPENBLAS_CORETYPE=Prescott`` (SSE3, every x86-64 has it)
gives the same figures on every x86-64 machine; set the variable to override it. Other
architectures keep OpenBLAS's choice.
"""

import os as _os
import platform as _platform

if _platform.machine().lower() in ("x86_64", "amd64"):
    _os.environ.setdefault("OPENBLAS_CORETYPE", "Prescott")
