"""Engine records as Bybit V5 JSON (strings for every number, as Bybit sends them).

A position shows its stop loss (``stopLoss``, "" when none); the venue's order that a triggered
stop loss placed, and its execution, carry ``stopOrderType`` "StopLoss" and ``createType``
"CreateByStopLoss" (the order its ``triggerPrice`` and ``triggerBy`` too), every other order
"" and "CreateByUser"."""

from __future__ import annotations

from decimal import Decimal, localcontext

from tm_common.history import BAR_INTERVAL_MS, HistoryBar

from tm_exchange_sim.matching import Execution, Instrument, MatchingEngine, Order, Position
from tm_exchange_sim.matching.models import ZERO, ClosedPnl

DISPLAY = Decimal("0.00000001")
MM_RATE = Decimal("0.005")


def num(value: Decimal | None) -> str:
    """An exact Decimal as plain text ("" for None)."""
    if value is None:
        return ""
    text = format(value, "f")
    return text


def money(value: Decimal | None) -> str:
    """A derived amount (averages, margins) at 8 decimals, trailing zeros removed."""
    if value is None:
        return ""
    with localcontext() as ctx:
        # quantize needs every digit of the result: 8 decimals of a 21-digit balance (one that
        # POST /sim/reset accepts) exceed the default precision of 28 (found by schemathesis)
        ctx.prec = max(ctx.prec, value.adjusted() + 10)
        text = format(value.quantize(DISPLAY), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def order_dict(o: Order, last_price: Decimal | None = None) -> dict:
    avg = o.avg_price
    leaves = o.leaves_qty
    return {
        "orderId": o.order_id, "orderLinkId": o.order_link_id, "blockTradeId": "",
        "symbol": o.symbol, "price": num(o.price) if o.price is not None else "0",
        "qty": num(o.qty), "side": o.side, "isLeverage": "", "positionIdx": 0,
        "orderStatus": o.status, "createType": o.create_type, "cancelType": o.cancel_type,
        "rejectReason": o.reject_reason, "avgPrice": money(avg) if avg is not None else "",
        "leavesQty": num(leaves), "leavesValue": money(leaves * (o.price or ZERO)),
        "cumExecQty": num(o.cum_exec_qty), "cumExecValue": num(o.cum_exec_value),
        "cumExecFee": num(o.cum_exec_fee), "timeInForce": o.time_in_force,
        "orderType": o.order_type, "stopOrderType": o.stop_order_type, "orderIv": "",
        "marketUnit": "", "triggerPrice": num(o.trigger_price), "takeProfit": "",
        "stopLoss": "", "tpslMode": "", "ocoTriggerBy": "", "tpLimitPrice": "",
        "slLimitPrice": "", "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": 0,
        "triggerBy": o.trigger_by,
        "lastPriceOnCreated": num(last_price), "reduceOnly": o.reduce_only,
        "closeOnTrigger": o.close_on_trigger, "placeType": "", "smpType": "None",
        "smpGroup": 0, "smpOrderId": "", "createdTime": str(o.created_ms),
        "updatedTime": str(o.updated_ms),
    }


def execution_dict(e: Execution) -> dict:
    return {
        "symbol": e.symbol, "orderId": e.order_id, "orderLinkId": e.order_link_id,
        "side": e.side, "orderPrice": num(e.order_price) if e.order_price is not None else "0",
        "orderQty": num(e.order_qty), "leavesQty": num(e.leaves_qty),
        "createType": e.create_type, "orderType": e.order_type,
        "stopOrderType": e.stop_order_type, "execFee": num(e.exec_fee), "execId": e.exec_id,
        "execPrice": num(e.exec_price), "execQty": num(e.exec_qty), "execType": e.exec_type,
        "execValue": num(e.exec_value), "execTime": str(e.exec_time_ms),
        "feeCurrency": "USDT", "isMaker": e.is_maker, "feeRate": num(e.fee_rate),
        "tradeIv": "", "markIv": "", "markPrice": num(e.mark_price),
        "indexPrice": num(e.mark_price), "underlyingPrice": "", "blockTradeId": "",
        "closedSize": num(e.closed_size), "seq": e.seq,
    }


def position_dict(p: Position, mark: Decimal | None) -> dict:
    mark = mark if mark is not None else ZERO
    value = abs(p.size) * p.avg_price
    im = p.initial_margin(mark) if p.size else ZERO
    return {
        "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": p.symbol,
        "side": p.side, "size": num(abs(p.size)),
        "avgPrice": money(p.avg_price) if p.size else "0",
        "positionValue": money(value), "tradeMode": 0, "autoAddMargin": 0,
        "positionStatus": "Normal", "leverage": num(p.leverage), "markPrice": num(mark),
        "liqPrice": "", "bustPrice": "", "positionIM": money(im),
        "positionMM": money(abs(p.size) * mark * MM_RATE), "positionBalance": money(im),
        "tpslMode": "Full", "takeProfit": "", "stopLoss": num(p.stop_loss) if p.stop_loss else "",
        "trailingStop": "0",
        "sessionAvgPrice": "", "unrealisedPnl": money(p.unrealised_pnl(mark)),
        "curRealisedPnl": money(p.realised_pnl), "cumRealisedPnl": money(p.cum_realised_pnl),
        "adlRankIndicator": 0, "createdTime": str(p.created_ms),
        "updatedTime": str(p.updated_ms), "seq": p.seq, "isReduceOnly": False,
        "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
    }


def ws_position_dict(p: Position, mark: Decimal | None, taker_rate: Decimal) -> dict:
    """A private WebSocket ``position`` item: the REST fields under Bybit's stream names
    (``entryPrice`` for ``avgPrice``, plus ``breakEvenPrice`` and the ``...ByMp`` margins)."""
    row = position_dict(p, mark)
    entry = row.pop("avgPrice")
    # Bybit, qty signed (short < 0): (entry x qty - realised) / (qty - |qty| x max(taker, 0.00055))
    rate = max(taker_rate, Decimal("0.00055"))
    size = p.size
    breakeven = (p.avg_price * size - p.realised_pnl) / (size - abs(size) * rate) if size \
        else ZERO
    return {**row, "entryPrice": entry, "breakEvenPrice": money(breakeven),
            "positionIMByMp": row["positionIM"], "positionMMByMp": row["positionMM"]}


def closed_pnl_dict(c: ClosedPnl) -> dict:
    return {
        "symbol": c.symbol, "orderId": c.order_id, "side": c.side, "qty": num(c.qty),
        "orderPrice": num(c.order_price), "orderType": c.order_type, "execType": "Trade",
        "closedSize": num(c.closed_size), "cumEntryValue": money(c.cum_entry_value),
        "avgEntryPrice": money(c.avg_entry_price), "cumExitValue": money(c.cum_exit_value),
        "avgExitPrice": money(c.avg_exit_price), "closedPnl": money(c.closed_pnl),
        "fillCount": "1", "leverage": num(c.leverage), "openFee": money(c.open_fee),
        "closeFee": money(c.close_fee), "createdTime": str(c.created_ms),
        "updatedTime": str(c.created_ms),
    }


def wallet_dict(w: dict[str, Decimal], positions_mm: Decimal) -> dict:
    """Bybit's UNIFIED wallet-balance ``list`` entry (USDT only; USD value = USDT)."""
    coin = {
        "coin": "USDT", "equity": money(w["equity"]), "usdValue": money(w["equity"]),
        "walletBalance": num(w["wallet_balance"]), "free": "", "locked": "0",
        "spotHedgingQty": "0", "borrowAmount": "0", "availableToWithdraw": "",
        "accruedInterest": "0", "totalOrderIM": money(w["order_im"]),
        "totalPositionIM": money(w["position_im"]), "totalPositionMM": money(positions_mm),
        "unrealisedPnl": money(w["unrealised_pnl"]),
        "cumRealisedPnl": money(w["cum_realised_pnl"]), "bonus": "0",
        "marginCollateral": True, "collateralSwitch": True, "availableToBorrow": "",
    }
    im = w["position_im"] + w["order_im"]
    equity = w["equity"]
    return {
        "accountType": "UNIFIED", "accountLTV": "0",
        "accountIMRate": money(im / equity) if equity > 0 else "0",
        "accountMMRate": money(positions_mm / equity) if equity > 0 else "0",
        "totalEquity": money(equity), "totalWalletBalance": num(w["wallet_balance"]),
        "totalMarginBalance": money(equity), "totalAvailableBalance": money(w["available"]),
        "totalPerpUPL": money(w["unrealised_pnl"]), "totalInitialMargin": money(im),
        "totalMaintenanceMargin": money(positions_mm), "coin": [coin],
    }


def turnover(bar: HistoryBar) -> str:
    """Quote volume estimate (base volume x close): the shipped bars carry no turnover."""
    return money(Decimal(bar.volume) * Decimal(bar.close))


def kline_row(bar: HistoryBar) -> list[str]:
    return [str(bar.open_time_ms), bar.open, bar.high, bar.low, bar.close, bar.volume,
            turnover(bar)]


def ws_kline(bar: HistoryBar, interval: str = "240", *, confirm: bool = True,
             at_ms: int | None = None) -> dict:
    """A ``kline`` topic item; ``at_ms`` (the last trade's time) defaults to the bar's end."""
    end = bar.open_time_ms + BAR_INTERVAL_MS - 1
    return {"start": bar.open_time_ms, "end": end, "interval": interval, "open": bar.open,
            "close": bar.close, "high": bar.high, "low": bar.low, "volume": bar.volume,
            "turnover": turnover(bar), "confirm": confirm,
            "timestamp": end if at_ms is None else at_ms}


def instrument_list(instruments: dict[str, Instrument], symbol: str | None,
                    status: str) -> list[dict]:
    return [i.info() for s, i in instruments.items()
            if symbol in (None, s) and i.status == status]


def wallet_entry(engine: MatchingEngine) -> dict:
    mm = sum((abs(p.size) * engine.marks.get(s, ZERO) * MM_RATE
              for s, p in engine.account.positions.items()), ZERO)
    return wallet_dict(engine.wallet(), mm)
