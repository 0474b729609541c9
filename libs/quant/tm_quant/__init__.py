"""Pure quant code shared by the live services (bar by bar) and the trainer (batch over history).

Values in, values out: no I/O library is imported here (tested). Modules:

- :mod:`tm_quant.features`: 49 per-instrument features; ``compute_batch`` == ``IncrementalFeatures``.
- :mod:`tm_quant.labels`: forward log-return labels and the Spearman IC.
- :mod:`tm_quant.garch`: GARCH(1,1)-t fit (arch, training) and one-step recursion (live).
- :mod:`tm_quant.regime`: 4-state Gaussian HMM fit (hmmlearn, training), forward filter (live),
  labelling rule, Kelly fractions per regime.
- :mod:`tm_quant.leakage`: ``assert_no_lookahead`` (full-history row == history cut at that row).
"""
