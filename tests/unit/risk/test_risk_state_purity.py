"""The state snapshot round-trips exactly; the domain stays pure."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import tm_risk.domain
from tm_risk.domain.state import RiskState
from tm_risk.testing import (
    EQUITY,
    N_BARS,
    SYMBOLS,
    bar_env,
    command_env,
    exec_rejected_env,
    snapshot_env,
    target_env,
    warm_handler,
)

LAST = N_BARS - 1
PKG = Path(tm_risk.domain.__file__).parent
IO_MODULES = ("redis", "httpx", "sqlalchemy", "fastapi", "starlette", "requests", "aiohttp", "asyncpg",
              "pybit", "websockets", "uvicorn", "structlog", "prometheus_client", "tm_common.bus",
              "tm_common.service", "tm_common.db", "tm_exchange_sim")


def _scenario():
    h, closes = warm_handler()
    evs = [target_env(s, LAST, f) for s, f in zip(SYMBOLS, (0.5, -0.3, 0.2))]
    evs += [snapshot_env(LAST + 1, EQUITY, {"BTCUSDT": ("0.5", closes["BTCUSDT"][-1])}),
            exec_rejected_env("ETHUSDT", LAST, 1), bar_env("BTCUSDT", N_BARS, "41000.5")]
    return h, evs


def test_snapshot_round_trips_and_a_restored_handler_continues_identically():
    h, evs = _scenario()
    for e in evs[:3]:
        h.process(e)
    data = h.snapshot()
    st = RiskState.from_json(data)
    assert st.same_as(h.state) and st.to_json() == data
    assert b"pickle" not in data and data.startswith(b"{")
    twin, _ = warm_handler()
    twin.restore(data)
    rest = evs[3:] + [command_env("trip"), target_env("SOLUSDT", N_BARS, 0.4)]
    assert [[(o.stream, o.body) for o in h.process(e)] for e in rest] == \
        [[(o.stream, o.body) for o in twin.process(e)] for e in rest]
    assert twin.snapshot() == h.snapshot()
    assert h.state.intended.get("ETHUSDT") is None              # rejected by the executor
    assert h.state.position("BTCUSDT") == Decimal("0.5") or "BTCUSDT" in h.state.intended


def test_restore_none_is_the_initial_state_and_bad_versions_fail():
    h, _ = warm_handler()
    h.restore(None)
    assert h.state.same_as(RiskState())
    with pytest.raises(ValueError):
        RiskState.from_json(b'{"v": 99}')


def test_importing_the_domain_loads_no_io_library():
    code = ("import sys, tm_risk.domain.decision, tm_risk.domain.breaker, tm_risk.domain.state; "
            "print(','.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout.strip().split(",")
    bad = [m for m in loaded if any(m == x or m.startswith(x + ".") for x in IO_MODULES)]
    assert bad == []


def test_domain_source_has_no_io_or_wall_clock():
    pattern = re.compile(r"^\s*(import|from)\s+(os|io|pathlib|socket|pickle|shutil|time|datetime|"
                         r"random|asyncio)\b|\bopen\(|\bpickle\b|time\.time|perf_counter", re.MULTILINE)
    offenders = [p.name for p in PKG.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
