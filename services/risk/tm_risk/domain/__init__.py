"""Pure risk logic: values in, decision out. No I/O imports, no wall clock (a clock is passed in).

- :mod:`~tm_risk.domain.params`: the frozen parameters (limits, breaker settings, lot filters).
- :mod:`~tm_risk.domain.sizing`: target fraction → lot-rounded quantity → order legs, intent ids.
- :mod:`~tm_risk.domain.rules`: one module per rule and ``RULES``, the order they apply in.
- :mod:`~tm_risk.domain.limits`: the caps of ``RULES`` run alone on plain values.
- :mod:`~tm_risk.domain.hrp`: hierarchical risk parity budgets from 4h log returns.
- :mod:`~tm_risk.domain.model`: the cached market model of one window (returns, Σ, budgets).
- :mod:`~tm_risk.domain.var`: 1-day parametric and historical VaR and the scale that fits a limit.
- :mod:`~tm_risk.domain.breaker`: the circuit breaker transition table and its evaluation.
- :mod:`~tm_risk.domain.state`: the risk engine's state and its JSON snapshot.
- :mod:`~tm_risk.domain.decision`: one sized target through ``RULES`` → orders or a rejection.
"""
