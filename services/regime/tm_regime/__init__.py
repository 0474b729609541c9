"""Regime service: GARCH volatility and a 4-state HMM per instrument → ``regime.state``.

Consumes ``md.bar`` and ``models.promoted``; publishes one ``RegimeDetected`` per configured
instrument and bar. Layout: ``config``, ``domain/`` (pure), ``handler``, ``repository``
(regimes table), ``app`` (wiring), ``__main__`` (``python -m tm_regime``).
"""

import tm_common  # noqa: F401 - first: it pins OpenBLAS's kernels before numpy loads
