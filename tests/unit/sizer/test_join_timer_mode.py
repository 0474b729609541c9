"""The sizer's wall-clock join timer runs on live time only: in a replay a flush after N wall
seconds would make the decisions depend on how long a service was down."""

import pytest
from tm_sizer.config import SizerSettings


@pytest.mark.parametrize("mode, timeout, on", [("live", 120.0, True), ("paper", 120.0, True),
                                               ("replay", 120.0, False), ("backtest", 120.0, False),
                                               ("live", 0.0, False)])
def test_join_timer_only_on_live_time(mode, timeout, on):
    assert SizerSettings(mode=mode, join_timeout_s=timeout).join_timer_enabled is on
