"""HMM regimes: labelling rule, forward filter == hmmlearn, safe serialisation, Kelly fractions."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM
from tm_quant.garch import GarchFilter, fit_garch
from tm_quant.regime import (
    STATE_LABELS,
    KellyFractions,
    RegimeFilter,
    RegimeModel,
    _usable,
    fit_regime_model,
    label_states,
    regime_observation,
)


@pytest.fixture(scope="module")
def X(returns) -> np.ndarray:
    r = returns
    sigma = GarchFilter(fit_garch(r)).run(r * 100) / 100
    return regime_observation(r, sigma)


@pytest.fixture(scope="module")
def model(X) -> RegimeModel:
    return fit_regime_model(X, seed=11)


def as_hmmlearn(m: RegimeModel) -> GaussianHMM:
    h = GaussianHMM(n_components=4, covariance_type="full")
    h.n_features = m.n_features
    h.startprob_, h.transmat_, h.means_, h.covars_ = m.startprob, m.transmat, m.means, m.covars
    return h


def test_labelling_rule_holds_on_fitted_model(model):
    vol, ret = model.means[:, 1], model.means[:, 0]
    bull, neutral, bear, crisis = range(4)
    assert vol[crisis] == vol.max()
    assert ret[bull] > ret[neutral] > ret[bear]
    assert model.labels == STATE_LABELS


def test_label_states_on_known_means():
    means = np.array([[-0.002, -4.0],   # bear
                      [0.000, -2.0],    # crisis: highest vol, even with a middling return
                      [0.003, -4.5],    # bull
                      [0.001, -4.2]])   # neutral
    assert label_states(means).tolist() == [2, 3, 0, 1]


def test_forward_step_equals_hmmlearn_predict_proba(model, X):
    hmm = as_hmmlearn(model)
    f = RegimeFilter(model)
    points = {0, 1, 10, 500, 1777, len(X) - 1}
    for t, x in enumerate(X):
        state = f.update(x)
        if t in points:
            expected = hmm.predict_proba(X[: t + 1])[-1]
            np.testing.assert_allclose(state.probs, expected, rtol=1e-8, atol=1e-12)
            assert state.label == STATE_LABELS[int(np.argmax(expected))]


def test_filter_resumes_from_alpha_checkpoint(model, X):
    full = RegimeFilter(model)
    head = RegimeFilter(model)
    for x in X[:300]:
        full.update(x)
        head.update(x)
    resumed = RegimeFilter(model, alpha=head.alpha)
    for x in X[300:400]:
        np.testing.assert_array_equal(resumed.update(x).probs, full.update(x).probs)


def test_extreme_observation_gives_valid_probabilities(model):
    f = RegimeFilter(model)
    for x in ([0.0, -5.0], [-0.5, 3.0], [0.5, -20.0]):
        s = f.update(np.array(x))
        assert np.isfinite(s.probs).all() and s.probs.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        f.update(np.array([np.nan, 0.0]))


def test_kelly_fractions(model, X):
    k = KellyFractions()
    assert k.as_array().tolist() == [0.67, 0.50, 0.25, 0.17]
    assert k.for_label("Crisis") == 0.17
    custom = KellyFractions(bull=0.8, neutral=0.4, bear=0.2, crisis=0.0)
    s = RegimeFilter(model, kelly=custom).update(X[0])
    assert s.kelly_fraction == custom.for_label(s.label)
    assert s.kelly_blend == pytest.approx(float(s.probs @ custom.as_array()))
    with pytest.raises(ValueError):
        KellyFractions(bull=1.5)


def test_npz_and_json_round_trip_without_pickle(model, X):
    buf = io.BytesIO()
    np.savez(buf, **model.to_arrays())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        from_npz = RegimeModel.from_arrays(z)
    from_json = RegimeModel.from_arrays(json.loads(json.dumps(
        {k: v.tolist() for k, v in model.to_arrays().items()})))
    for m in (from_npz, from_json):
        a, b = RegimeFilter(model), RegimeFilter(m)
        for x in X[:50]:
            np.testing.assert_array_equal(a.update(x).probs, b.update(x).probs)


def test_invalid_models_are_rejected(model):
    arrays = model.to_arrays()
    bad_t = dict(arrays, transmat=arrays["transmat"] * 2)
    with pytest.raises(ValueError):
        RegimeModel.from_arrays(bad_t)
    with pytest.raises(ValueError):
        RegimeModel.from_arrays(dict(arrays, labels=np.array(STATE_LABELS[::-1])))
    with pytest.raises(np.linalg.LinAlgError):
        RegimeModel.from_arrays(dict(arrays, covars=-arrays["covars"]))


def test_fit_is_reproducible_for_a_seed(X):
    a = fit_regime_model(X[:1000], seed=3, n_restarts=1, n_iter=50)
    b = fit_regime_model(X[:1000], seed=3, n_restarts=1, n_iter=50)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.transmat, b.transmat)


def _fitted() -> GaussianHMM:
    """A 4-state model as a restart leaves it (parameters set, not fitted)."""
    hmm = GaussianHMM(n_components=4, covariance_type="full")
    hmm.n_features = 2
    hmm.startprob_ = np.full(4, 0.25)
    hmm.transmat_ = np.full((4, 4), 0.25)
    hmm.means_ = np.array([[0.01, -4.0], [-0.01, -3.0], [0.0, -4.5], [-0.03, -2.5]])
    hmm.covars_ = np.stack([np.diag([1e-4, 0.1])] * 4)
    return hmm


def test_a_restart_with_a_collapsed_state_is_not_usable():
    """EM can end with a NaN or singular covariance while the likelihood stays finite (seen with
    another CPU's BLAS kernels): fit_regime_model passes such a restart over."""
    hmm = _fitted()
    assert _usable(hmm)
    covars = np.array(hmm.covars_)
    covars[2] = np.nan
    hmm._covars_ = covars             # as EM leaves it (the setter would refuse NaN)
    assert not _usable(hmm)
    singular = np.array(hmm.covars_)
    singular[1] = [[1.0, 1.0], [1.0, 1.0]]
    hmm._covars_ = singular
    assert not _usable(hmm)
