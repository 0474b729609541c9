"""External flows in an equity curve (tm_quant.flows): per unit, time-weighted."""

from decimal import Decimal

from tm_quant.flows import flow_factor, rebase, unit_curve

D = Decimal


def test_a_flow_rescales_what_the_curve_is_measured_against():
    assert flow_factor(D(1000), D(-400)) == D("0.6")
    assert rebase(D(1050), D(1000), D(-400)) == D(630)          # the peak, per unit
    assert rebase(D(1000), D(1000), D(500)) == D(1500)          # the equity itself moves by it


def test_a_curve_without_unit_value_moves_by_the_amount():
    assert flow_factor(D(0), D(100)) is None
    assert flow_factor(D(100), D(-100)) is None
    assert rebase(D(120), D(0), D(100)) == D(220)
    assert rebase(D(120), D(100), D(-100)) == D(20)


def test_the_unit_curve_is_the_equity_when_nothing_flowed_and_net_of_flows_otherwise():
    points = [(1100.0, 0.0), (1210.0, 0.0)]
    assert unit_curve(1000.0, points) == [1000.0, 1100.0, 1210.0]
    # +10 %, then 1100 deposited (2200), then +10 % on 2200 = 2420: 10 % and 10 % per unit
    got = unit_curve(1000.0, [(1100.0, 0.0), (2420.0, 1100.0)])
    assert got[1] == 1100.0 and abs(got[2] - 1210.0) < 1e-9
    # a withdrawal of half at 2000, then flat: no return
    got = unit_curve(1000.0, [(2000.0, 0.0), (1000.0, -1000.0)])
    assert abs(got[2] - got[1]) < 1e-9
