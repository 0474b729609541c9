"""Signal service: per-bar features and gradient-boosted inference → ``signal.tl``.

Consumes ``md.bar``, ``md.dvol`` and ``models.promoted``; publishes one ``SignalGenerated`` per
configured instrument and bar. Layout: ``config`` (settings), ``domain/`` (pure logic),
``handler`` (events ↔ domain, model loading, warm-up), ``repository`` (signals table, bar
history), ``app`` (wiring), ``__main__`` (``python -m tm_signal``).
"""

import tm_common  # noqa: F401 - first: it pins OpenBLAS's kernels before numpy loads
