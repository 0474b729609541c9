"""``python -m tm_trainer.rl``: the same as ``tm train rl``."""

from tm_trainer.rl.cli import rl_app

if __name__ == "__main__":
    rl_app(prog_name="python -m tm_trainer.rl")
