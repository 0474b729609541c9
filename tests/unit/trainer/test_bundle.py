"""Model bundle: deterministic bytes, safe members only, the signal/regime contracts."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
import xgboost as xgb
from tm_common.models.bundle import Bundle, BundleError, calibrate, load_npz, npz_bytes
from tm_quant.features import FEATURE_NAMES
from tm_quant.garch import DEFAULT_GARCH_PARAMS


def _booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    return xgb.train({"objective": "binary:logistic", "nthread": 1, "max_depth": 2, "seed": 1},
                     xgb.DMatrix(X, label=(X[:, 0] > 0).astype(float)), 4)


def signal_bundle(version: str = "signal-test") -> Bundle:
    m = {"kind": "signal", "version": version, "horizon_bars": 6, "feature_names": list(FEATURE_NAMES),
         "instruments": {"BTCUSDT": {"booster": "BTCUSDT.ubj", "features": ["ret_1", "ret_2", "rv_6"],
                                     "garch": DEFAULT_GARCH_PARAMS.to_dict(), "first_bar_ms": 0,
                                     "prob_calibration": {"a": 1.0, "b": 0.0}}},
         "metrics": {"mean_ic": 0.01}}
    return Bundle(m, {"BTCUSDT.ubj": bytes(_booster().save_raw("ubj")),
                      "extra.npz": npz_bytes(a=np.arange(4.0), labels=np.array(["Bull", "Bear"]))})


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return buf.getvalue()


def test_round_trip_is_byte_identical_and_loads_the_booster():
    b = signal_bundle()
    raw = b.to_bytes()
    assert raw == signal_bundle().to_bytes()  # deterministic (fixed times, sorted members)
    back = Bundle.from_bytes(raw)
    assert back.manifest == b.manifest and back.to_bytes() == raw
    bst = xgb.Booster(model_file=back.booster_bytes("BTCUSDT.ubj"))
    assert bst.num_boosted_rounds() == 4
    arrays = back.npz("extra.npz")
    assert arrays["labels"].tolist() == ["Bull", "Bear"]
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert [i.filename for i in zf.infolist()] == sorted(["manifest.json", "BTCUSDT.ubj", "extra.npz"])
        assert all(i.compress_type == zipfile.ZIP_STORED and i.date_time == (1980, 1, 1, 0, 0, 0)
                   for i in zf.infolist())


def test_npz_is_deterministic_and_refuses_objects():
    assert npz_bytes(x=np.arange(3)) == npz_bytes(x=np.arange(3))
    with pytest.raises(BundleError, match="pickle"):
        npz_bytes(x=np.array([{"a": 1}], dtype=object))
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}], dtype=object))  # a pickled member: must not load
    with pytest.raises(BundleError):
        load_npz(buf.getvalue())


@pytest.mark.parametrize("name", ["model.pkl", "model.pickle", "../evil.json", "a/b.json",
                                  "/abs.json", "x.joblib", ".hidden.json"])
def test_refuses_unsafe_members(name):
    raw = signal_bundle().to_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members[name] = pickle.dumps({"x": 1})
    with pytest.raises(BundleError):
        Bundle.from_bytes(_zip(members))
    with pytest.raises(BundleError):
        Bundle(signal_bundle().manifest, {**signal_bundle().files, name: b"{}"}).to_bytes()


def test_refuses_missing_manifest_and_non_zip():
    with pytest.raises(BundleError, match="manifest"):
        Bundle.from_bytes(_zip({"a.json": b"{}"}))
    with pytest.raises(BundleError, match="zip"):
        Bundle.from_bytes(b"not a zip")
    with pytest.raises(BundleError, match="JSON"):
        Bundle.from_bytes(_zip({"manifest.json": b"{nope"}))


@pytest.mark.parametrize("path,value", [
    (("horizon_bars",), 0), (("instruments", "BTCUSDT", "booster"), "missing.ubj"),
    (("instruments", "BTCUSDT", "features"), ["not_a_feature"]),
    (("instruments", "BTCUSDT", "prob_calibration"), {"a": 1.0}),
    (("instruments", "BTCUSDT", "first_bar_ms"), "0"), (("kind",), ""),
])
def test_signal_contract_is_checked(path, value):
    b = signal_bundle()
    m = b.manifest
    node = m
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(BundleError, match="manifest"):
        Bundle(m, b.files).to_bytes()


def test_regime_contract():
    from tm_quant.regime import RegimeModel
    arrays = {"startprob": np.full(4, 0.25), "transmat": np.full((4, 4), 0.25),
              "means": np.arange(8.0).reshape(4, 2), "covars": np.stack([np.eye(2)] * 4)}
    files = {"BTCUSDT_hmm.npz": npz_bytes(**RegimeModel.from_arrays(arrays).to_arrays())}
    kelly = {"Bull": 0.67, "Neutral": 0.5, "Bear": 0.25, "Crisis": 0.17}
    m = {"kind": "regime", "version": "r1", "instruments": {"BTCUSDT": {
        "hmm": "BTCUSDT_hmm.npz", "garch": DEFAULT_GARCH_PARAMS.to_dict(), "kelly": kelly}}}
    back = Bundle.from_bytes(Bundle(m, files).to_bytes())
    model = RegimeModel.from_arrays(back.npz("BTCUSDT_hmm.npz"))
    np.testing.assert_array_equal(model.means, arrays["means"])
    m["instruments"]["BTCUSDT"]["kelly"] = {"Bull": 2.0}
    with pytest.raises(BundleError, match="kelly"):
        Bundle(m, files).to_bytes()


def test_calibration():
    assert calibrate(0.7, {"a": 1.0, "b": 0.0}) == 0.7
    assert calibrate(0.0, {"a": 2.0, "b": 0.0}) == 0.5
    assert calibrate(-800.0, {"a": 1.0, "b": 0.5}) == pytest.approx(0.0)
