"""Control API for tests and replay (not part of Bybit): the replay clock, faults, reset,
transfers into or out of the wallet (``POST /sim/transfer``: a person's deposit or withdrawal) and
read-only views of every venue order and execution for invariant checks; with the live feed
(``TM_SIM_FEED=live``) the bars and funding rates pushed to the paper venue
(``POST /sim/bars``, ``POST /sim/funding``; see :mod:`tm_exchange_sim.live`).

When ``TM_ADMIN_TOKEN`` is set, the POST routes require ``Authorization: Bearer <token>``; the
check, with the body-size cap and the JSON media type, is made on the headers before any body is
read, by :class:`~tm_exchange_sim.http_guard.HttpGuard` (installed by ``create_app``). Without a
token the sim is an open development venue (``tm demo``); deployments set one (Helm values).
"""

from __future__ import annotations

from decimal import Decimal

from fastapi import Body, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from tm_common.history import BAR_INTERVAL_MS, HistoryBar

from tm_exchange_sim.faults import FaultConfig, FaultInjector
from tm_exchange_sim.gateway import Gateway
from tm_exchange_sim.live import PushedFunding
from tm_exchange_sim.metrics import SimMetrics
from tm_exchange_sim.ratelimit import RateLimiter
from tm_exchange_sim.serialise import execution_dict, money, num, order_dict, wallet_entry
from tm_exchange_sim.state import SimState
from tm_exchange_sim.ws import WsHub


class ClockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bar_time_ms: int | None = Field(default=None, description="close every bar up to this "
                                    "open time (ms)")
    steps: int | None = Field(default=None, ge=1, le=100_000)


class FaultsRequest(FaultConfig):
    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    drop_ws_now: bool = False
    ip_ban_now: bool = Field(default=False, description="ban every caller (HTTP 403) for "
                             "ip_ban_s from now; with ip_ban_s 0, lift every ban")


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_ms: int | None = None
    initial_balance: Decimal | None = Field(default=None, gt=0)
    seed: int | None = None


class TransferRequest(BaseModel):
    """A deposit (``amount`` > 0) or a withdrawal (< 0) of USDT: a decimal string or a number.
    What is not a finite non-zero number is the engine's 400, with its reason."""

    model_config = ConfigDict(extra="forbid")

    amount: Decimal | str = Field(union_mode="left_to_right",
                                  description="USDT; > 0 deposits, < 0 withdraws")


class PushedBar(BaseModel):
    """One closed 4h bar (``open_time_ms`` on the 4h grid, UTC)."""

    model_config = ConfigDict(extra="ignore")

    symbol: str
    open_time_ms: int = Field(ge=0)
    open: Decimal = Field(gt=0, allow_inf_nan=False)
    high: Decimal = Field(gt=0, allow_inf_nan=False)
    low: Decimal = Field(gt=0, allow_inf_nan=False)
    close: Decimal = Field(gt=0, allow_inf_nan=False)
    volume: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)

    def history_bar(self) -> HistoryBar:
        return HistoryBar(open_time_ms=self.open_time_ms, open=str(self.open),
                          high=str(self.high), low=str(self.low), close=str(self.close),
                          volume=str(self.volume))


class BarsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bars: list[PushedBar] = Field(max_length=10_000)


class PushedRate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    symbol: str
    settle_time_ms: int = Field(ge=0)
    rate: Decimal = Field(gt=-1, lt=1, allow_inf_nan=False)


class FundingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rates: list[PushedRate] = Field(max_length=10_000)


def add_sim_routes(app: FastAPI, state: SimState, faults: FaultInjector, limiter: RateLimiter,
                   hub: WsHub, metrics: SimMetrics, gateway: Gateway) -> None:
    def clock_view() -> dict:
        return {"feed": state.settings.sim_feed, "clock_ms": state.clock_ms, "now_ms": state.now_ms,
                "first_ms": state.feed.first_ms, "last_ms": state.feed.last_ms,
                "marks": {s: str(p) for s, p in sorted(state.engine.marks.items())}}

    @app.get("/sim/clock")
    async def get_clock() -> dict:
        return clock_view()

    @app.post("/sim/clock")
    async def post_clock(body: ClockRequest) -> dict:
        if body.bar_time_ms is not None and body.steps is not None:
            raise HTTPException(status_code=400, detail="give bar_time_ms or steps, not both")
        try:
            steps = state.advance(body.bar_time_ms, body.steps)
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        metrics.set_clock(state.clock_ms)
        await hub.publish_steps(steps)
        await hub.publish_engine_events()
        return {**clock_view(), "steps": len(steps),
                "bars": {s: b.open_time_ms for step in steps[-1:] for s, b in step.bars.items()}}

    @app.post("/sim/bars")
    async def post_bars(body: BarsRequest) -> dict:
        bad = [b for b in body.bars if b.open_time_ms % BAR_INTERVAL_MS
               or not b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high]
        if bad:
            raise HTTPException(status_code=400, detail=f"not a 4h bar (grid time, low <= open/"
                                f"close <= high): {bad[0].symbol} {bad[0].open_time_ms}")
        try:
            steps = state.push_bars([(b.symbol, b.history_bar()) for b in body.bars])
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        metrics.set_clock(state.clock_ms)
        await hub.publish_steps(steps)
        await hub.publish_engine_events()
        return {**clock_view(), "taken": sum(len(s.bars) for s in steps),
                "live": state.market.counts.as_dict() if state.market else {}}

    @app.post("/sim/funding")
    async def post_funding(body: FundingRequest) -> dict:
        try:
            state.push_funding([PushedFunding(r.symbol, r.settle_time_ms, r.rate)
                                for r in body.rates])
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        await hub.publish_engine_events()
        return {**clock_view(), "live": state.market.counts.as_dict() if state.market else {}}

    @app.get("/sim/faults")
    async def get_faults() -> dict:
        return {"config": faults.config.model_dump(), "seed": faults.seed,
                "injected": dict(faults.injected)}

    @app.post("/sim/faults")
    async def post_faults(body: FaultsRequest) -> dict:
        given = body.model_dump(exclude_unset=True, exclude={"seed", "drop_ws_now",
                                                             "ip_ban_now"})
        config = faults.config.model_copy(update=given)
        faults.configure(FaultConfig.model_validate(config.model_dump()), reseed=body.seed)
        limiter.override_per_s = faults.config.rate_limit_per_s
        if body.ip_ban_now:
            gateway.ip_guard.ban_everyone(gateway.wall_ms(), faults.config.ip_ban_s)
        dropped = await hub.close_all() if body.drop_ws_now else 0
        return {"config": faults.config.model_dump(), "seed": faults.seed, "dropped": dropped,
                "ip_banned_until_ms": gateway.ip_guard.everyone_until}

    @app.post("/sim/instruments")
    async def post_instruments(body: dict | list = Body(...)) -> dict:  # noqa: B008
        """New filters for listed symbols (an instruments-info answer, its result or list)."""
        try:
            replaced = state.replace_instruments(body)
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        await hub.publish_engine_events()          # a delisting already past: its delivery
        return {"replaced": replaced}

    @app.post("/sim/reset")
    async def post_reset(body: ResetRequest | None = None) -> dict:
        body = body or ResetRequest()
        try:
            state.reset(body.start_ms, body.initial_balance, body.seed)
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        state.engine.pop_events()
        metrics.set_clock(state.clock_ms)
        return clock_view()

    @app.post("/sim/transfer")
    async def post_transfer(body: TransferRequest) -> dict:
        """Deposit or withdraw USDT (at most the available balance); answers the wallet."""
        try:
            booked = state.transfer(body.amount)
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        metrics.transfers.labels("in" if booked > 0 else "out").inc()
        await hub.publish_engine_events()           # the wallet topic
        w = state.engine.wallet()
        return {"amount": num(booked), "direction": "in" if booked > 0 else "out",
                "wallet_balance": num(w["wallet_balance"]),
                "deposits": num(state.engine.account.deposits), "equity": money(w["equity"]),
                "available": money(w["available"])}

    @app.get("/sim/orders")
    async def all_orders() -> dict:
        eng = state.engine
        return {"list": [order_dict(o) for o in eng.orders.values()],
                "count": len(eng.orders)}

    @app.get("/sim/executions")
    async def all_executions() -> dict:
        eng = state.engine
        return {"list": [execution_dict(e) for e in eng.executions],
                "count": len(eng.executions)}

    @app.get("/sim/account")
    async def account() -> dict:
        return wallet_entry(state.engine)
