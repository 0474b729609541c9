"""The signal service serves a registered family's numpy predictor, and refuses a bundle naming a
family it does not know without importing anything the bundle names."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tm_common.errors import ModelUnusable
from tm_common.models.bundle import Bundle, BundleError, npz_bytes
from tm_quant.families import TrainRows, logistic
from tm_quant.features import FEATURE_NAMES
from tm_quant.features.spec import INDEX
from tm_quant.garch import DEFAULT_GARCH_PARAMS
from tm_signal.domain.model import SignalModel
from tm_signal.models import BadModel, parse

FEATS = logistic.FEATURES


def _arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(500, len(FEATS)))
    fwd = X[:, 0] + rng.logistic(size=500)
    return logistic.fit(TrainRows(X, (fwd > 0).astype(np.int8), fwd, FEATS, "ETHUSDT", seed))


def family_bundle(version: str = "fam-1", family: str = "logistic", arrays=None,
                  member: str = "ETHUSDT.npz") -> tuple[dict, dict]:
    files = {member: npz_bytes(**(_arrays(1) if arrays is None else arrays))}
    manifest = {"kind": "signal", "version": version, "family": family, "horizon_bars": 6,
                "feature_names": list(FEATURE_NAMES),
                "instruments": {"ETHUSDT": {"model": "ETHUSDT.npz", "features": list(FEATS),
                                            "garch": DEFAULT_GARCH_PARAMS.to_dict(),
                                            "first_bar_ms": 0,
                                            "prob_calibration": {"a": 1.0, "b": 0.0}}},
                "metrics": {}}
    return manifest, files


def test_a_logistic_bundle_serves_the_family_predictor_on_one_row():
    manifest, files = family_bundle()
    model = SignalModel.from_manifest(*_roundtrip(manifest, files))
    im = model.instruments["ETHUSDT"]
    assert model.family == "logistic" and im.booster is None and im.predictor is not None
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(20, len(FEATURE_NAMES)))
    rows[rng.random(rows.shape) < 0.1] = np.nan
    want = logistic.predict(_arrays(1), rows[:, [INDEX[f] for f in FEATS]])
    got = np.array([im.predict(r) for r in rows])
    assert np.array_equal(got, want)                     # bit for bit: row-wise reduction
    assert im.side_inputs == ("dvol", "funding")         # dvol_chg_6, funding_mean_18


def _roundtrip(manifest, files):
    b = Bundle.from_bytes(Bundle(manifest, files).to_bytes())
    return b.manifest, b.files


@pytest.mark.parametrize("name", ["nope", "os", "subprocess", "tm_quant.families.logistic"])
def test_a_bundle_naming_an_unknown_family_is_refused_with_a_clear_error(name):
    manifest, files = family_bundle(family=name)
    raw = Bundle(manifest, files).to_bytes()             # a valid bundle: only the name is new
    with pytest.raises(BadModel, match=f"signal bundle unusable: fam-1: unknown signal family "
                                       f"'{name}': this code knows xgboost, logistic, random_forest, trend"):
        parse(raw)
    with pytest.raises(ModelUnusable):
        SignalModel.from_manifest(manifest, files)


def test_a_bundle_never_makes_the_service_import_a_module_it_names(tmp_path):
    """A module on the path, named by the bundle (as the family, or dotted), is never imported:
    the name is only looked up in the service's own table."""
    (tmp_path / "tm_evil_family.py").write_text("import sys; sys.stderr.write('IMPORTED'); "
                                                "raise SystemExit(99)\n")
    names = ("tm_evil_family", "tm_evil_family:FAMILY", "tm_evil_family.FAMILY")
    for i, name in enumerate(names):
        m, f = family_bundle(family=name)
        (tmp_path / f"b{i}.zip").write_bytes(Bundle(m, f).to_bytes())
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from pathlib import Path
from tm_signal.models import BadModel, parse
for i in range({len(names)}):
    try:
        parse(Path({str(tmp_path)!r}, f"b{{i}}.zip").read_bytes())
    except BadModel as e:
        print("refused:", e)
assert "tm_evil_family" not in sys.modules
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0 and "IMPORTED" not in proc.stderr, proc.stderr
    assert proc.stdout.count("refused:") == 3, proc.stdout
    assert proc.stdout.count("unknown signal family 'tm_evil_family") == 3, proc.stdout


@pytest.mark.parametrize("mutate, needle", [
    (lambda a: a.pop("scale"), "arrays refused: ValueError: array 'scale' missing"),
    (lambda a: a.update(coef=np.zeros(3)), "array 'coef' must be float (13,)"),
    (lambda a: a.update(clip=np.array([np.inf])), "'clip' has non-finite values"),
])
def test_arrays_the_family_cannot_use_are_refused_at_load(mutate, needle):
    a = _arrays(1)
    mutate(a)
    manifest, files = family_bundle(arrays=a)
    with pytest.raises(BadModel) as e:
        parse(Bundle(manifest, files).to_bytes())
    assert "fam-1/ETHUSDT (logistic)" in str(e.value) and needle in str(e.value)


def test_the_bundle_contract_of_a_family():
    manifest, files = family_bundle()
    spec = manifest["instruments"]["ETHUSDT"]
    with pytest.raises(BundleError, match=r"instruments.ETHUSDT.model must name a .npz member "
                                          r"of the bundle \(family 'logistic'\)"):
        Bundle(manifest, {"other.npz": files["ETHUSDT.npz"]}).to_bytes()
    with pytest.raises(BundleError, match="family must be a non-empty string"):
        Bundle({**manifest, "family": 3}, files).to_bytes()
    # the built-in family needs its booster, whatever else the bundle holds
    with pytest.raises(BundleError, match="booster must name a .ubj member"):
        Bundle({**manifest, "family": "xgboost"}, files).to_bytes()
    assert spec["model"] == "ETHUSDT.npz"
