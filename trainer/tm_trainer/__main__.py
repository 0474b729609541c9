"""``python -m tm_trainer [options]``: one training run (same options as ``tm train``)."""

from tm_trainer.train_cli import train_app

if __name__ == "__main__":
    train_app(prog_name="python -m tm_trainer")
