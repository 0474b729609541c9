"""Pure portfolio accounting: no I/O imports, ``Decimal`` money, float ratios.

- :mod:`~tm_portfolio.domain.ledger`: fills, funding, marks and reconciliations → positions, PnL,
  cash and equity, booked exactly as the venue books them.
- :mod:`~tm_portfolio.domain.performance`: Sharpe, Sortino, Calmar, drawdown, turnover.
- :mod:`~tm_portfolio.domain.book`: the two above plus the one-snapshot-per-bar-time protocol and
  the JSON state the handler saves.
"""
