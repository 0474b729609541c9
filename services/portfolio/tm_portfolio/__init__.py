"""Portfolio service: fills, funding and bars → positions, PnL, equity, drawdown, performance;
one ``PortfolioSnapshotted`` per bar time on ``portfolio.snapshot`` (see ``domain/book.py``)."""

import tm_common  # noqa: F401 - first: it pins OpenBLAS's kernels before numpy loads
