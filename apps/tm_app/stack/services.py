"""The local stack as data: which services exist, what module runs each, on which port.

``tm up`` turns the selected rows into :class:`~tm_app.stack.supervisor.ProcessSpec`s. A service
whose module is not installed (or has no ``__main__``) is reported, not started.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tm_common.ports import SERVICE_PORTS

from tm_app.stack.env_scope import service_env
from tm_app.stack.supervisor import ProcessSpec


@dataclass(frozen=True)
class ServiceDef:
    """One service of the local stack: run as ``python -m <module>`` listening on ``port``."""

    name: str
    module: str
    port: int


# Pipeline order (upstream first): `tm up` starts them in this order. Ports: the one table.
SERVICES: tuple[ServiceDef, ...] = tuple(ServiceDef(name, f"tm_{name}", port)
                                         for name, port in SERVICE_PORTS.items())

BY_NAME: dict[str, ServiceDef] = {s.name: s for s in SERVICES}

#: The services that check or send the admin token (risk's breaker endpoints, the simulator's
#: control API, ingest driving the simulator's clock); no other service is given it.
ADMIN_TOKEN_SERVICES = frozenset({"risk", "exchange_sim", "ingest"})


def load_table(path: Path) -> tuple[ServiceDef, ...]:
    """A service table from a JSON file: ``[{"name": ..., "module": ..., "port": ...}, ...]``.

    For stacks other than the built-in one (and for tests). Raises ``ValueError``/``KeyError``/
    ``TypeError`` on a malformed file.
    """
    rows = json.loads(Path(path).read_text())
    if not isinstance(rows, list) or not rows:
        raise ValueError("expected a non-empty JSON list")
    table = tuple(ServiceDef(name=str(r["name"]), module=str(r["module"]), port=int(r["port"]))
                  for r in rows)
    if len({s.name for s in table}) != len(table):
        raise ValueError("duplicate service names")
    return table


class UnknownServiceError(ValueError):
    """A service name that is not in :data:`SERVICES`."""


def select(spec: str | None, table: Sequence[ServiceDef] = SERVICES) -> list[ServiceDef]:
    """The services named in ``spec`` (comma-separated; ``None``/empty = all), in table order.

    ``exchange-sim`` and ``exchange_sim`` are the same name. Raises :class:`UnknownServiceError`
    naming the unknown ones and the valid choices.
    """
    if not spec or not spec.strip():
        return list(table)
    by_name = {s.name: s for s in table}
    wanted = [n.strip().replace("-", "_") for n in spec.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise UnknownServiceError(f"unknown service(s): {', '.join(unknown)} "
                                  f"(choose from {', '.join(by_name)})")
    return [s for s in table if s.name in wanted]


def missing_reason(module: str) -> str | None:
    """Why ``python -m <module>`` cannot run, or ``None`` if it can.

    Looks the module up without importing it (a package is only imported to find ``__main__``
    if it is a namespace; regular packages are checked for a ``__main__.py`` file).
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as e:
        return f"module {module} cannot be found: {e}"
    if spec is None:
        return f"module {module} is not installed"
    locations = spec.submodule_search_locations
    if locations is not None and not any((Path(p) / "__main__.py").exists() for p in locations):
        return f"package {module} has no __main__ (not runnable yet)"
    return None


def build_specs(services: Sequence[ServiceDef], env: Mapping[str, str], *,
                python: str = sys.executable, port_offset: int = 0) -> list[ProcessSpec]:
    """One :class:`ProcessSpec` per service: the part of ``env`` that service's settings read
    (:func:`tm_app.stack.env_scope.service_env`), plus ``TM_SERVICE_NAME``, ``TM_HTTP_PORT``;
    ``TM_ADMIN_TOKEN`` only for :data:`ADMIN_TOKEN_SERVICES`.

    ``env`` is the whole environment with the resolved shared settings (``TM_REDIS_URL``,
    ``TM_DATABASE_URL``, ``TM_DATA_DIR``); ``port_offset`` is added to each default port
    (several stacks on one host). The supervisor adds nothing to a spec's environment
    (``base_env={}``), so a service sees only its own variables.
    """
    specs = []
    for s in services:
        port = s.port + port_offset
        own = service_env(s.name, env)
        if s.name not in ADMIN_TOKEN_SERVICES:
            own.pop("TM_ADMIN_TOKEN", None)
        specs.append(ProcessSpec(
            name=s.name, argv=[python, "-m", s.module], port=port,
            env={**own, "TM_SERVICE_NAME": s.name, "TM_HTTP_PORT": str(port)}))
    return specs
