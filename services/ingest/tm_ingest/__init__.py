"""tm_ingest."""

import tm_common  # noqa: F401 - first: it pins OpenBLAS's kernels before numpy loads
