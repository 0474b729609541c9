"""The risk service: limits, hierarchical risk allocation, VaR and the circuit breaker.

``sizing.target`` + ``portfolio.snapshot`` + ``md.bar`` + ``exec.report`` + ``risk.command`` in;
``risk.order`` (OrderApproved), ``risk.rejection`` (OrderRejected, source ``risk``) and
``risk.breaker`` (BreakerStateChanged) out. Pure rules in :mod:`tm_risk.domain`, the event
handler in :mod:`tm_risk.handler`, wiring in :mod:`tm_risk.app`; see ``services/risk/README.md``.
"""

import tm_common  # noqa: F401 - first: it pins OpenBLAS's kernels before numpy loads
