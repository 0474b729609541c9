"""Pure sizing logic (numpy only; no I/O, no torch): Kelly, the cascade, the observation and
paper book shared with the trainer, the numpy actor, the policy bundle contract and the join
engine."""
