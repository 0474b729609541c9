"""A scripted in-memory venue for the placement protocol and handler tests (no I/O)."""

from __future__ import annotations

from decimal import Decimal

from tm_common.instruments import InstrumentSpec
from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import VenueFatal, VenueRejected, VenueTransient
from tm_executor.domain.ids import order_link_id
from tm_executor.domain.orders import VenueExecution, VenueOrder
from tm_executor.links import LinkIds

LOTS = {"BTCUSDT": InstrumentSpec(symbol="BTCUSDT", base_coin="BTC", qty_step=Decimal("0.001"),
                                  min_order_qty=Decimal("0.001"), max_order_qty=Decimal(1190),
                                  max_mkt_order_qty=Decimal(119), tick_size=Decimal("0.1"),
                                  min_notional=Decimal(0))}


SALT = "unit0000"


def settings(**kw) -> ExecutorSettings:
    base = {"redis_url": "redis://unused", "intent_deadline_s": 30.0, "place_attempts": 6,
            "fill_wait_s": 1.0, "preflight_wait_s": 0.0, "mode": "replay", "link_salt": SALT}
    return ExecutorSettings(**{**base, **kw})


def links(s: ExecutorSettings) -> LinkIds:
    """The settings' pinned salt (no Redis: ``ensure`` never reads the repository)."""
    return LinkIds(s, None)  # type: ignore[arg-type]


def link(intent_id: str) -> str:
    return order_link_id(intent_id, SALT)


class FakeVenue:
    """Orders by link id. ``place_faults``: per place_order call, one of None (ok),
    "timeout_after" (processed, answer lost), "5xx" (not processed), "rate" (10006),
    "reject:<code>", "fatal:<code>". ``lookup_misses``: lookups by link id that miss an
    existing order (venue lag), consumed first. ``fill_late``: executions appear only after
    this many get_executions calls."""

    def __init__(self, place_faults=(), lookup_misses=0, fill_late=0, limit_rests=False):
        self.place_faults = list(place_faults)
        self.lookup_misses = lookup_misses
        self.fill_late = fill_late
        self.limit_rests = limit_rests
        self.orders: dict[str, VenueOrder] = {}
        self.execs: list[VenueExecution] = []
        self.place_calls = 0
        self.exec_calls = 0
        self.lookups = 0

    async def get_order(self, symbol, *, order_id=None, link_id=None):
        self.lookups += 1
        if order_id:
            return next((o for o in self.orders.values() if o.order_id == order_id), None)
        if self.lookup_misses and link_id in self.orders:
            self.lookup_misses -= 1
            return None
        return self.orders.get(link_id)

    async def place_order(self, params):
        self.place_calls += 1
        fault = self.place_faults.pop(0) if self.place_faults else None
        if fault == "5xx":
            raise VenueTransient("place_order", "HTTP 503", http_status=503, ambiguous=True)
        if fault == "rate":
            raise VenueTransient("place_order", "Too many visits", ret_code=10006,
                                 retry_after_s=0.25)
        if fault and fault.startswith("reject:"):
            raise VenueRejected("place_order", "refused", ret_code=int(fault.split(":")[1]))
        if fault and fault.startswith("fatal:"):
            raise VenueFatal("place_order", "API key is invalid.", ret_code=int(fault[6:]))
        link = params["orderLinkId"]
        if link in self.orders:
            raise VenueRejected("place_order", "OrderLinkedID is duplicate", ret_code=110072)
        oid = f"o{len(self.orders) + 1}"
        qty = Decimal(params["qty"])
        rests = params["orderType"] == "Limit" and self.limit_rests
        self.orders[link] = VenueOrder(order_id=oid, order_link_id=link, symbol=params["symbol"],
                                       side=params["side"], order_type=params["orderType"],
                                       status="New" if rests else "Filled", qty=qty,
                                       cum_exec_qty=Decimal(0) if rests else qty)
        if not rests:
            self.execs.append(VenueExecution(
                exec_id=f"e-{oid}", order_id=oid, order_link_id=link, symbol=params["symbol"],
                side=params["side"], qty=qty, price=Decimal("100.5"), fee=Decimal("0.01"),
                is_maker=False, exec_time_ms=1, exec_type="Trade", leaves_qty=Decimal(0)))
        if fault == "timeout_after":
            raise VenueTransient("place_order", "ReadTimeout", ambiguous=True)
        return oid

    async def get_executions(self, symbol, order_id):
        self.exec_calls += 1
        if self.exec_calls <= self.fill_late:
            return []
        return [e for e in self.execs if e.order_id == order_id]


class Clock:
    """A test clock that sleeping advances."""

    def __init__(self):
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


class PassedPreflight:
    state, reason, fatal_code, specs, passed = "passed", "ok", None, LOTS, True

    skew: str | None = None

    async def wait(self, timeout_s):
        return True

    def clock_problem(self):
        return self.skew


class FatalPreflight(PassedPreflight):
    state, reason, fatal_code, passed = "fatal", "get_wallet_balance failed: 10003", 10003, False

    async def wait(self, timeout_s):
        return False
