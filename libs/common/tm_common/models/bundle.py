"""Model bundles: one safe, deterministic artifact per model version (never a pickle).

Format: a zip archive, every member *stored* (no compression), fixed timestamps (1980-01-01),
fixed permissions, members sorted by name. It holds ``manifest.json`` plus members whose names are
plain file names (no folders) ending in one of:

- ``.json``: UTF-8 JSON;
- ``.npz``: numpy arrays, read with ``allow_pickle=False`` (object arrays cannot be stored);
- ``.ubj``: an xgboost booster in UBJSON (``Booster.save_raw("ubj")``).

The same manifest and members always give the same bytes, so a bundle's sha256 identifies it.
:meth:`Bundle.from_bytes` rejects anything else (other extensions such as ``.pkl``, path traversal,
duplicate or missing members, a member whose bytes are not of its extension's format, e.g. an
``.npz`` holding an object array, which only pickle could load, a manifest that breaks its kind's
contract) with :class:`BundleError`.

Contract, kind ``"signal"`` (read by the signal service)::

    {"kind": "signal", "version": str, "horizon_bars": int (>= 1, bars of 4 h),
     "feature_names": list(tm_quant.features.FEATURE_NAMES),   # the compute_batch column order
     "instruments": {SYM: {
         "booster": "SYM.ubj",                 # member name
         "features": [str, ...],               # selected features, in the model's column order
         "garch": GarchParams.to_dict(),       # percent units; pass to compute_batch / IncrementalFeatures
         "first_bar_ms": int,                  # open time of the first bar features were computed
                                               # from: the live path warms up from the same bar
         "prob_calibration": {"a": float, "b": float}}},
     "metrics": {...}}

    Inference for one bar: ``x = row[[feature_names.index(f) for f in features]]``,
    ``raw = booster.inplace_predict(x[None, :])[0]``; ``p = 1 / (1 + exp(-(a * raw + b)))`` when
    the calibration is not the identity ``a = 1, b = 0``, else ``p = raw`` (already a probability).
    ``p`` is P(forward log return over ``horizon_bars`` > 0). Use :func:`calibrate`.

    ``"family"`` (optional str, default ``"xgboost"``): the signal model family. Another family
    (``tm_quant.families``) replaces ``"booster"`` with ``"model": "SYM.npz"`` (the family's
    arrays) and computes ``raw`` with the family's registered numpy ``predict``; the rest is the
    same. The bundle only *names* the family: a reader looks the name up in its own code and
    refuses a name it does not know (it never imports anything a bundle names).

Contract, kind ``"regime"`` (read by the regime service)::

    {"kind": "regime", "version": str, "instruments": {SYM: {
         "hmm": "SYM_hmm.npz",                 # RegimeModel.to_arrays()
         "garch": GarchParams.to_dict(),       # volatility input of the HMM observation
         "kelly": {"Bull": 0.67, "Neutral": 0.5, "Bear": 0.25, "Crisis": 0.17}}},
     "metrics": {...}}

Other kinds (e.g. ``"rl"``) are accepted with only the generic checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
#: A signal bundle without ``family`` is of the built-in family (per-instrument xgboost boosters).
BUILTIN_FAMILY = "xgboost"
ALLOWED_EXTENSIONS = (".json", ".npz", ".ubj")
#: Upper bound on the total uncompressed size of a bundle (bytes): refuses zip bombs.
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644 << 16
_REGIME_LABELS = ("Bull", "Neutral", "Bear", "Crisis")


class BundleError(ValueError):
    """The bytes are not a valid bundle; the message says what is wrong."""


def _check_name(name: str) -> None:
    if not name or name != name.strip() or "/" in name or "\\" in name or name in (".", "..") \
            or name.startswith(".") or "\x00" in name or ":" in name:
        raise BundleError(f"bundle member {name!r}: only plain file names are allowed "
                          "(no folders, no path traversal)")
    if not name.endswith(ALLOWED_EXTENSIONS):
        raise BundleError(f"bundle member {name!r}: extension not allowed "
                          f"(only {', '.join(ALLOWED_EXTENSIONS)}; never pickles)")


def _zip(members: Mapping[str, bytes]) -> bytes:
    """Deterministic stored zip of ``members`` (sorted, fixed time and mode)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = _FILE_MODE
            info.create_system = 3
            zf.writestr(info, bytes(members[name]))
    return buf.getvalue()


def _unzip(data: bytes, what: str) -> dict[str, bytes]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as e:
        raise BundleError(f"{what} is not a zip archive: {e}") from e
    out: dict[str, bytes] = {}
    total = 0
    with zf:
        for info in zf.infolist():
            total += info.file_size
            if total > MAX_BUNDLE_BYTES:
                raise BundleError(f"{what} is larger than {MAX_BUNDLE_BYTES} bytes uncompressed")
            if info.filename in out:
                raise BundleError(f"{what}: duplicate member {info.filename!r}")
            try:
                out[info.filename] = zf.read(info)
            except (zipfile.BadZipFile, NotImplementedError, ValueError, OSError) as e:
                raise BundleError(f"{what}: cannot read member {info.filename!r}: {e}") from e
    return out


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8; NaN/inf refused (not JSON). Deterministic."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False,
                          ensure_ascii=False).encode()
    except ValueError as e:
        raise BundleError(f"not JSON-serialisable (NaN/inf are not allowed): {e}") from e


def npz_bytes(**arrays: Any) -> bytes:
    """Arrays as deterministic ``.npz`` bytes (``name.npy`` members, stored, fixed timestamps).

    Object arrays are refused (:class:`BundleError`): they would need pickle to load.
    """
    members = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise BundleError(f"array {name!r} has dtype object: not storable without pickle")
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
        members[f"{name}.npy"] = buf.getvalue()
    return _zip(members)


def load_npz(data: bytes) -> dict[str, np.ndarray]:
    """Arrays from ``.npz`` bytes, with ``allow_pickle=False``; :class:`BundleError` if unreadable."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise BundleError(f"not a loadable .npz (pickle is never allowed): {e}") from e


def calibrate(raw: float, calibration: Mapping[str, float]) -> float:
    """Probability from a raw booster output with Platt ``{"a", "b"}``; identity when a=1, b=0."""
    a, b = float(calibration["a"]), float(calibration["b"])
    if a == 1.0 and b == 0.0:
        return float(raw)
    z = a * float(raw) + b
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise BundleError(f"manifest: {msg}")


def _check_garch(where: str, g: Any) -> None:
    _need(isinstance(g, dict) and all(k in g for k in ("mu", "omega", "alpha", "beta")),
          f"{where}.garch must be GarchParams.to_dict()")


def validate_manifest(manifest: Any, files: Mapping[str, bytes]) -> None:
    """Generic checks plus the contract of kinds ``signal`` and ``regime`` (module docstring).

    Raises:
        BundleError: naming the first field that breaks the contract.
    """
    _need(isinstance(manifest, dict), "must be a JSON object")
    _need(isinstance(manifest.get("kind"), str) and manifest["kind"] != "", "kind must be a string")
    _need(isinstance(manifest.get("version"), str) and manifest["version"] != "",
          "version must be a string")
    kind = manifest["kind"]
    if kind not in ("signal", "regime"):
        return
    inst = manifest.get("instruments")
    _need(isinstance(inst, dict) and len(inst) > 0, "instruments must be a non-empty object")
    if kind == "signal":
        h = manifest.get("horizon_bars")
        _need(isinstance(h, int) and not isinstance(h, bool) and h >= 1, "horizon_bars must be int >= 1")
        names = manifest.get("feature_names")
        _need(bool(isinstance(names, list) and all(isinstance(n, str) for n in names) and names),
              "feature_names must be a list of strings")
        family = manifest.get("family", BUILTIN_FAMILY)
        _need(isinstance(family, str) and family != "", "family must be a non-empty string")
        for sym, spec in inst.items():
            w = f"instruments.{sym}"
            _need(isinstance(spec, dict), f"{w} must be an object")
            if family == BUILTIN_FAMILY:
                _need(spec.get("booster", "").endswith(".ubj") and spec["booster"] in files,
                      f"{w}.booster must name a .ubj member of the bundle")
            else:
                model = spec.get("model")
                _need(isinstance(model, str) and model.endswith(".npz") and model in files,
                      f"{w}.model must name a .npz member of the bundle (family {family!r})")
            feats = spec.get("features")
            _need(bool(isinstance(feats, list) and feats and all(f in names for f in feats)),
                  f"{w}.features must be a non-empty subset of feature_names")
            _need(len(set(feats)) == len(feats), f"{w}.features has duplicates")
            _check_garch(w, spec.get("garch"))
            fb = spec.get("first_bar_ms")
            _need(isinstance(fb, int) and not isinstance(fb, bool), f"{w}.first_bar_ms must be int ms")
            cal = spec.get("prob_calibration")
            _need(isinstance(cal, dict) and all(isinstance(cal.get(k), (int, float)) for k in "ab"),
                  f"{w}.prob_calibration must be {{'a': float, 'b': float}}")
    else:
        for sym, spec in inst.items():
            w = f"instruments.{sym}"
            _need(isinstance(spec, dict), f"{w} must be an object")
            _need(spec.get("hmm", "").endswith(".npz") and spec["hmm"] in files,
                  f"{w}.hmm must name a .npz member of the bundle")
            _check_garch(w, spec.get("garch"))
            kelly = spec.get("kelly")
            _need(isinstance(kelly, dict) and set(kelly) == set(_REGIME_LABELS)
                  and all(0.0 <= float(v) <= 1.0 for v in kelly.values()),
                  f"{w}.kelly must map {', '.join(_REGIME_LABELS)} to fractions in [0, 1]")


@dataclass(frozen=True)
class Bundle:
    """A manifest plus named member files (bytes). ``files`` never contains ``manifest.json``."""

    manifest: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def to_bytes(self) -> bytes:
        """Deterministic zip bytes (validated first: a bad bundle is never written)."""
        if MANIFEST in self.files:
            raise BundleError(f"{MANIFEST} is written from .manifest, not from files")
        for name in self.files:
            _check_name(name)
        validate_manifest(self.manifest, self.files)
        for name, data in self.files.items():
            _check_member(name, data)
        return _zip({MANIFEST: canonical_json(self.manifest), **self.files})

    @classmethod
    def from_bytes(cls, data: bytes) -> Bundle:
        """Parse and validate bundle bytes.

        Raises:
            BundleError: not a zip, a member with a disallowed name or extension, no manifest,
                invalid JSON, or a manifest that breaks its kind's contract.
        """
        members = _unzip(data, "bundle")
        for name in members:
            _check_name(name)
        if MANIFEST not in members:
            raise BundleError(f"bundle has no {MANIFEST}")
        manifest = _parse_json(MANIFEST, members.pop(MANIFEST))
        for name, body in members.items():
            _check_member(name, body)
        validate_manifest(manifest, members)
        return cls(manifest=manifest, files=members)

    def json(self, name: str) -> Any:
        """A ``.json`` member, decoded."""
        return _parse_json(name, self._member(name, ".json"))

    def npz(self, name: str) -> dict[str, np.ndarray]:
        """A ``.npz`` member's arrays (``allow_pickle=False``)."""
        return load_npz(self._member(name, ".npz"))

    def booster_bytes(self, name: str) -> bytearray:
        """A ``.ubj`` member, ready for ``xgboost.Booster(model_file=...)``/``load_model``."""
        return bytearray(self._member(name, ".ubj"))

    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def _member(self, name: str, ext: str) -> bytes:
        if not name.endswith(ext) or name not in self.files:
            raise BundleError(f"bundle {self.manifest.get('version')!r} has no {ext} member {name!r}")
        return self.files[name]


def _check_member(name: str, data: bytes) -> None:
    """The member's bytes are of its extension's format: JSON parses, ``.npz`` loads without
    pickle (object arrays are refused), ``.ubj`` is a UBJSON object. Checked when a bundle is
    written and when it is read (so the registry refuses a pickle at ``register``)."""
    if name.endswith(".json"):
        _parse_json(name, data)
    elif name.endswith(".npz"):
        load_npz(data)
    elif name.endswith(".ubj") and data[:1] != b"{":
        # xgboost's UBJSON model is one object, so it starts with "{"; a pickle starts with 0x80.
        raise BundleError(f"bundle member {name!r} is not a UBJSON object (xgboost "
                          "Booster.save_raw('ubj')); pickles are never loaded")


def _parse_json(name: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"bundle member {name!r} is not valid UTF-8 JSON: {e}") from e
