"""Position-sizing maths shared by the sizer service and the trainer: Kelly fractions
(:mod:`~tm_quant.sizing.kelly`), the SAC observation (:mod:`~tm_quant.sizing.observation`), the
numpy SAC actor (:mod:`~tm_quant.sizing.actor`) and the 4-tier cascade
(:mod:`~tm_quant.sizing.cascade`). Pure functions of their inputs; no I/O."""
