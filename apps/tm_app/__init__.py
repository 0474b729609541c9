"""Running the whole system: the in-process backtest, the mesh replay (the main job), the run
record read back from the streams, and the report. Both modes produce the same streams, so one
reader and one report serve both, and parity is a comparison of two run records."""

import tm_common  # noqa: F401 - first: it pins OpenBLAS's kernels before numpy loads
