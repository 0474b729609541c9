"""The service base: runtime (consumers, readiness, status), FastAPI app factory, entry point.

See :mod:`tm_common.service.app` for how a service is wired and :mod:`tm_common.service.example`
for a complete one. Names are imported lazily so that importing this package stays cheap.
"""

from __future__ import annotations

__all__ = ["ServiceRuntime", "create_app", "make_bus", "make_consumer", "run_service",
           "state_key", "with_log_context"]


def __getattr__(name: str):
    if name in ("create_app", "run_service"):
        from tm_common.service import app
        return getattr(app, name)
    if name == "ServiceRuntime":
        from tm_common.service.runtime import ServiceRuntime
        return ServiceRuntime
    if name in __all__:
        from tm_common.service import wiring
        return getattr(wiring, name)
    raise AttributeError(name)
