"""``python -m tm_app.shadow``: a shadow book served until SIGTERM (settings ``TM_SHADOW_*``)."""

from __future__ import annotations

from tm_common.service.app import run_service
from tm_common.service.wiring import make_bus

from tm_app.shadow.app import build
from tm_app.shadow.config import ShadowSettings


def main() -> int:
    settings = ShadowSettings()
    # The book's streams: its own namespace; production's (settings.namespace) is only read.
    own = settings.model_copy(update={"namespace": settings.namespace_for(settings.candidate)})
    parts = build(settings, bus=make_bus(own))
    return run_service(parts.runtime(), routers=parts.routers)


if __name__ == "__main__":
    raise SystemExit(main())
