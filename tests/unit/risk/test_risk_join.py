"""The join: bar t's targets are decided together, in symbol order, against snapshot t, so the
decisions do not depend on the order in which the mesh delivers the inputs of bar t."""

from __future__ import annotations

import itertools
from decimal import Decimal

from tm_common.events import OrderApproved, OrderRejected
from tm_risk.domain.params import RiskParams
from tm_risk.handler import RiskHandler
from tm_risk.testing import (
    EQUITY,
    N_BARS,
    SYMBOLS,
    bar_env,
    command_env,
    make_params,
    snapshot_env,
    target_env,
    warm_handler,
)

T = N_BARS          # the bar decided in these tests; warm_handler has bars 0 .. T - 1
# Large targets: the gross and net caps bind, so each decision depends on the others'.
FRACTIONS = {"BTCUSDT": 0.9, "ETHUSDT": 0.8, "SOLUSDT": -0.7}


def joined(**kw) -> RiskParams:
    return make_params(join_targets=True, **kw)


def inputs(closes, fractions=FRACTIONS, positions=None):
    """Bar T of each symbol, snapshot T, and one target per symbol (in that order)."""
    bars = [bar_env(s, T, closes[s][-1] * Decimal("1.01")) for s in SYMBOLS]
    snap = snapshot_env(T, EQUITY, positions)
    targets = [target_env(s, T, f) for s, f in fractions.items()]
    return bars, snap, targets


def approved(out):
    return [(e.body.instrument, e.body.side, e.body.qty, e.body.intent_id) for e in out
            if isinstance(e.body, OrderApproved)]


def run(params, events):
    h, _ = warm_handler(params)
    out = []
    for e in events:
        out += h.process(e)
    return h, out


def test_every_delivery_order_of_a_bar_gives_the_same_orders():
    _, closes = warm_handler()
    bars, snap, targets = inputs(closes)
    results = set()
    for order in itertools.permutations([snap, *targets]):
        _, out = run(joined(), [*bars, *order])
        results.add(tuple(approved(out)))
    assert len(results) == 1
    (orders,) = results
    assert list(dict.fromkeys(o[0] for o in orders)) == list(SYMBOLS)   # in symbol order


def test_without_the_join_the_same_permutations_disagree():
    """The scenario is order-sensitive: the test above would fail without the join."""
    _, closes = warm_handler()
    bars, snap, targets = inputs(closes)
    results = set()
    for order in itertools.permutations(targets):
        _, out = run(make_params(), [*bars, snap, *order])
        results.add(tuple(sorted(approved(out))))
    assert len(results) > 1


def test_targets_wait_for_the_snapshot_of_their_bar():
    _, closes = warm_handler()
    bars, snap, targets = inputs(closes, positions={"BTCUSDT": (Decimal("0.5"),
                                                                 closes["BTCUSDT"][-1])})
    h, out = run(joined(), [*bars, *targets])
    assert approved(out) == [] and sorted(h.state.joining[snapshot_env(T, 1).body.bar_time_ms]) \
        == sorted(SYMBOLS)
    out = h.process(snap)
    btc = [o for o in approved(out) if o[0] == "BTCUSDT"]
    ref_h, ref = run(make_params(), [*bars, snap, *targets])
    assert approved(out) == approved(ref)                    # as if the snapshot came first
    assert btc and not h.state.joining


def test_an_incomplete_set_is_decided_when_the_next_bar_arrives_at_bar_t_prices():
    _, closes = warm_handler()
    bars, snap, targets = inputs(closes)
    h, out = run(joined(), [*bars, snap, *targets[:2]])      # SOL's target never comes
    assert approved(out) == []
    nxt = bar_env("BTCUSDT", T + 1, closes["BTCUSDT"][-1] * 2)   # a wild next price
    out = h.process(nxt)
    _, ref = run(make_params(), [*bars, snap, *targets[:2]])
    assert approved(out) == approved(ref)                    # decided before bar T + 1 applied
    assert h.state.decided_bar_ms == snap.body.bar_time_ms and not h.state.joining


def test_a_late_target_of_the_decided_bar_is_decided_alone_an_older_one_refused():
    _, closes = warm_handler()
    bars, snap, targets = inputs(closes)
    h, _ = run(joined(), [*bars, snap, *targets[:2], bar_env("BTCUSDT", T + 1, closes["BTCUSDT"][-1])])
    out = h.process(targets[2])                              # SOL's target of T, late
    assert [o[0] for o in approved(out)] == ["SOLUSDT"]
    h.state.decided_bar_ms = snap.body.bar_time_ms + 4 * 3600_000
    out = h.process(target_env("ETHUSDT", T, 0.1, tag="old"))
    rej = [e.body for e in out if isinstance(e.body, OrderRejected)]
    assert approved(out) == [] and len(rej) == 1 and "arrived after bar" in rej[0].reason


def test_a_watchdog_tick_after_the_timeout_decides_an_incomplete_set():
    _, closes = warm_handler()
    bars, snap, targets = inputs(closes)
    h, _ = run(joined(), [*bars, snap, targets[0]])
    close_ms = snap.body.bar_time_ms + 4 * 3600_000
    assert approved(h.process(command_env("tick", 1, at_ms=close_ms + 30_000))) == []
    out = h.process(command_env("tick", 2, at_ms=close_ms + 61_000))
    assert [o[0] for o in approved(out)] == ["BTCUSDT"]


def test_a_waiting_set_survives_a_restart():
    _, closes = warm_handler()
    bars, snap, targets = inputs(closes)
    h, _ = run(joined(), [*bars, targets[0], targets[1]])
    h2 = RiskHandler(joined())
    h2.restore(h.snapshot())
    assert h2.state.joining == h.state.joining
    out = h2.process(snap) + h2.process(targets[2])
    _, ref = run(joined(), [*bars, snap, *targets])
    assert approved(out) == approved(ref)


def test_the_service_settings_turn_the_join_on():
    from tm_risk.config import RiskSettings

    p = RiskSettings().params()
    assert p.join_targets and p.join_timeout_ms == 60_000


def test_a_delisted_symbol_is_not_waited_for():
    """BTCUSDT's delisting was carried out before bar T closed: no target of it will come, so
    bar T is decided once the others and the snapshot are in (not at the watchdog's timeout);
    a symbol still listed is waited for."""
    from dataclasses import replace

    from tm_common.instruments import DEFAULT_INSTRUMENTS
    from tm_common.testing.bars import open_ms

    _, closes = warm_handler()
    bars, snap, targets = inputs(closes, {"ETHUSDT": 0.3, "SOLUSDT": -0.2})
    delisted = {**DEFAULT_INSTRUMENTS, "BTCUSDT": replace(DEFAULT_INSTRUMENTS["BTCUSDT"],
                                                          delivery_time_ms=open_ms(T))}
    _, out = run(replace(joined(), instruments=delisted), [*bars[1:], snap, *targets])
    assert [o[0] for o in approved(out)] == ["ETHUSDT", "SOLUSDT"]
    _, waiting = run(joined(), [*bars[1:], snap, *targets])
    assert approved(waiting) == []
