"""RL position sizing (trainer side): out-of-sample data, the gymnasium environment, SAC training
with a curriculum, validation against pure Kelly, export of the actor to numpy, and the registry
entry of kind ``rl``. ``tm train rl`` / ``python -m tm_trainer.rl``.

Modules: ``oos`` (OOS signals), ``env`` (SizingEnv), ``evaluate`` (policies over held-back
windows, Sharpe), ``export`` (SAC actor → npz, bundle), ``train`` (curriculum, gate, registry),
``cli`` (typer ``rl_app``). torch / stable-baselines3 are imported only by ``train`` and
``export``; the runtime sizer never needs them.
"""
