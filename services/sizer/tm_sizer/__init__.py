"""Sizer service: signal + regime (+ bar) per instrument and bar → the 4-tier cascade
(RL policy, Kelly) → ``sizing.target``.

Consumes ``signal.tl``, ``regime.state``, ``md.bar``, ``risk.breaker``, ``portfolio.snapshot``,
``models.promoted`` and its own ``sizer.command``; publishes one ``PositionSized`` per instrument
and bar. Layout: ``config`` (settings), ``domain/`` (pure logic), ``handler`` (events ↔ domain,
policy loading), ``policies`` (registry access), ``repository`` (targets table), ``commands``
(the live join-timeout flush), ``metrics``, ``app`` (wiring), ``__main__`` (``python -m
tm_sizer``). Never imports torch or stable-baselines3: the policy runs as numpy.
"""

import tm_common  # noqa: F401 - first: it pins OpenBLAS's kernels before numpy loads
