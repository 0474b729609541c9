"""The service base: a built service's parts, runtime (consumers, readiness, status), FastAPI
app factory, entry point (``serve(build, settings)``).

See :mod:`tm_common.service.app` for how a service is wired and :mod:`tm_common.service.example`
for a complete one. Names are imported lazily so that importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WALL_CLOCK", "Clock", "ServiceAssembly", "ServiceParts", "ServiceRuntime", "app_of", "create_app", "entry_points", "every",
           "make_bus", "make_consumer", "model_database", "model_serving_parts", "parts_app",
           "retry_until_done", "run_service", "serve", "state_key", "with_log_context",
           "write_behind"]


def __getattr__(name: str) -> Any:
    if name in ("app_of", "create_app", "entry_points", "parts_app", "run_service", "serve"):
        from tm_common.service import app
        return getattr(app, name)
    if name in ("WALL_CLOCK", "Clock", "ServiceAssembly", "ServiceParts"):
        from tm_common.service import parts
        return getattr(parts, name)
    if name in ("every", "retry_until_done", "write_behind"):
        from tm_common.service import tasks
        return getattr(tasks, name)
    if name in ("model_database", "model_serving_parts"):
        from tm_common.service import serving
        return getattr(serving, name)
    if name == "ServiceRuntime":
        from tm_common.service.runtime import ServiceRuntime
        return ServiceRuntime
    if name in __all__:
        from tm_common.service import wiring
        return getattr(wiring, name)
    raise AttributeError(name)
