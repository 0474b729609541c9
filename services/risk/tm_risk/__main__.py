"""``python -m tm_risk``: serve the risk app until SIGTERM/SIGINT.

``tm_common.service.run_service`` builds its own app from a runtime and cannot add service routes,
so this mirrors it for an app that has them (same graceful drain and exit status)."""

from __future__ import annotations

import signal

import structlog
import uvicorn
from tm_common.logging import configure_logging
from tm_common.service.app import STARTUP_FAILURE

from tm_risk.app import build_app
from tm_risk.config import RiskSettings

log = structlog.get_logger("tm.risk")


def main() -> int:
    settings = RiskSettings()
    configure_logging(settings)
    config = uvicorn.Config(build_app(settings), host=settings.http_host, port=settings.http_port,
                            log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    received: list[int] = []

    def note(sig: int, frame: object) -> None:
        received.append(sig)
        server.should_exit = True

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
    if not server.started:
        log.error("service.startup_failed", service=settings.service_name)
        return STARTUP_FAILURE
    log.info("service.exit", service=settings.service_name,
             signal=[signal.Signals(x).name for x in received])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
