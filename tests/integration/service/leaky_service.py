"""The example service with a handler that tries hard to leak ``TM_ADMIN_TOKEN`` into the logs.

Run as a script by test_logs_process.py. Each event is logged with the secret in a message, under
secret-looking keys, nested, in an exception traceback; the first delivery of each event raises
an error whose message holds the secret, so the consumer loop's own ``bus.handler_failed`` line
carries it too. Every one of these must come out as ``***``.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from tm_common.bus.handler import Emit
from tm_common.events.base import Envelope
from tm_common.service.app import run_service
from tm_common.service.example import EchoHandler, ExampleSettings
from tm_common.service.runtime import ServiceRuntime
from tm_common.service.wiring import make_bus, make_consumer

log = structlog.get_logger("tm.leaky")


class LeakyEcho(EchoHandler):
    def __init__(self, out_stream: str, secret: str) -> None:
        super().__init__(out_stream)
        self.secret = secret
        self.failed: set[str] = set()

    async def handle(self, event: Envelope) -> Sequence[Emit]:
        s = self.secret
        log.info("leak.message", note=f"the admin token is {s}")
        log.info("leak.keys", api_key="plain-api-key-1", password="pw-1", nested={"auth_token": "t"})
        try:
            raise ValueError(f"cannot authenticate with {s}")
        except ValueError:
            log.exception("leak.traceback")
        if event.event_id not in self.failed:
            self.failed.add(event.event_id)
            raise RuntimeError(f"upstream refused token {s}")   # retried by the consumer loop
        return await super().handle(event)


def main() -> int:
    settings = ExampleSettings()
    bus = make_bus(settings)
    handler = LeakyEcho(settings.example_out_stream, settings.admin_token.get_secret_value())
    consumer = make_consumer(settings, bus, handler, [settings.example_in_stream])
    runtime = ServiceRuntime(settings, bus, consumers=[consumer],
                             status_extra=lambda: {"token": handler.secret, "note": handler.secret})
    return run_service(runtime)


if __name__ == "__main__":
    raise SystemExit(main())
