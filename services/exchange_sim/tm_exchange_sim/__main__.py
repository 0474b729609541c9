"""``python -m tm_exchange_sim``: serve the sim with uvicorn (host/port from settings).

Logs are the project's JSON lines (``tm_common.logging``) with the settings' secrets redacted.
"""

from __future__ import annotations

import sys

import uvicorn
from tm_common.errors import ConfigError
from tm_common.logging import configure_logging

from tm_exchange_sim.app import create_app
from tm_exchange_sim.config import ExchangeSimSettings


def main() -> None:
    settings = ExchangeSimSettings()
    configure_logging(settings)
    try:
        app = create_app(settings)
    except ConfigError as e:          # e.g. a venue journal it cannot be restored from
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                ws="auto")


if __name__ == "__main__":
    main()
