"""The one port table: each service's HTTP port (``/healthz``, ``/readyz``, ``/metrics``,
``/status``). Service settings take their ``TM_HTTP_PORT`` default from here; the local stack
(``tm up``), docker-compose, the Helm chart and Prometheus' scrape config are checked against it
by tests (``tests/unit/cli/test_default_ports.py``, ``tests/deploy``)."""

from __future__ import annotations

from types import MappingProxyType

# Pipeline order (upstream first), which is the order `tm up` starts them in.
SERVICE_PORTS = MappingProxyType({
    "exchange_sim": 8108,
    "ingest": 8101,
    "regime": 8102,
    "signal": 8103,
    "sizer": 8104,
    "risk": 8105,
    "executor": 8106,
    "portfolio": 8107,
})
