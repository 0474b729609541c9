"""Walk-forward splits: the purge property and the window layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_trainer.walkforward import make_splits


@settings(max_examples=200, deadline=None)
@given(n_windows=st.integers(1, 12), window=st.integers(1, 60), purge=st.integers(0, 250),
       horizon=st.integers(1, 48), min_train=st.integers(1, 300), extra=st.integers(0, 2000))
def test_no_training_index_within_purge_plus_horizon_of_any_test_index(
        n_windows, window, purge, horizon, min_train, extra):
    n = n_windows * window + purge + horizon + min_train + extra
    splits = make_splits(n, n_windows, window, purge, horizon, min_train)
    assert len(splits) == n_windows
    seen_test = []
    for sp in splits:
        assert sp.train.size >= min_train and sp.test.size == window
        # every pair: test index - train index > purge + horizon (training only before the test)
        assert sp.test.min() - sp.train.max() > purge + horizon
        gaps = np.abs(sp.test[:, None] - sp.train[None, :])
        assert gaps.min() > purge + horizon
        # a training label (known at i + horizon) ends before the test window starts
        assert sp.train.max() + horizon < sp.test.min()
        seen_test.append(sp.test)
    allt = np.concatenate(seen_test)
    assert np.array_equal(allt, np.arange(n - n_windows * window, n))  # contiguous, ends at n-1


def test_layout_by_hand():
    sp = make_splits(1000, 2, 42, 200, 6, 100)
    assert sp[0].test[0] == 1000 - 84 and sp[1].test[-1] == 999
    assert sp[0].train[-1] == 1000 - 84 - 206 - 1
    assert sp[1].train[-1] == sp[0].train[-1] + 42  # expanding by one window


@pytest.mark.parametrize("args", [(100, 2, 42, 200, 6, 10), (5000, 0, 42, 200, 6, 10),
                                  (5000, 2, 42, -1, 6, 10), (5000, 2, 42, 200, 0, 10)])
def test_refuses_impossible_or_bad_arguments(args):
    with pytest.raises(ValueError):
        make_splits(*args)
