"""Save and restore :class:`~tm_quant.features.IncrementalFeatures` as plain JSON (no pickle).

The feature state of an instrument is a few hundred floats (deques of the rolling windows) plus
scalars (EMAs, Wilder averages, the GARCH variance). It goes into the handler's snapshot, saved in
the same Redis transaction as the signals, so a restart resumes bit-identically without reading any
history (ARCHITECTURE §4). Every float travels as base64 float64 bytes (exact, NaN included,
~5 KB per instrument), so the snapshot is strict JSON and cheap to encode.

The codec walks the object's attributes generically; an attribute of a type it does not know
raises ``TypeError``, so a change in ``tm_quant`` shows up as a failing round-trip test, not as a
silently lost field.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import Any

import numpy as np
from tm_quant.features import IncrementalFeatures
from tm_quant.garch import GarchFilter, GarchParams

CODEC_VERSION = 1


def _b64(values: list[float]) -> str:
    return base64.b64encode(np.array(values, dtype=np.float64).tobytes()).decode()


def _enc(name: str, v: Any) -> Any:
    if isinstance(v, float):
        return {"f": _b64([v])}
    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, deque):
        if all(isinstance(x, float) for x in v):
            return {"f64": _b64(list(v)), "maxlen": v.maxlen}
        return {"list": [_enc(name, x) for x in v], "maxlen": v.maxlen}
    if isinstance(v, dict):
        return {"items": [[k, _enc(name, x)] for k, x in v.items()]}
    if isinstance(v, GarchFilter):
        return {"garch_variance": v.variance}
    raise TypeError(f"IncrementalFeatures.{name}: cannot encode {type(v).__name__}")


def _dec(v: Any, params: GarchParams) -> Any:
    if not isinstance(v, dict):
        return v
    if "f" in v:
        return float(np.frombuffer(base64.b64decode(v["f"]), dtype=np.float64)[0])
    if "f64" in v:
        arr = np.frombuffer(base64.b64decode(v["f64"]), dtype=np.float64)
        return deque((float(x) for x in arr), maxlen=v["maxlen"])
    if "list" in v:
        return deque((_dec(x, params) for x in v["list"]), maxlen=v["maxlen"])
    if "items" in v:
        return {k: _dec(x, params) for k, x in v["items"]}
    if "garch_variance" in v:
        return GarchFilter(params, sigma2=float(v["garch_variance"]))
    raise ValueError(f"unknown encoded value {sorted(v)}")


def encode(features: IncrementalFeatures, params: GarchParams) -> dict[str, Any]:
    """JSON-able state of ``features``, built with GARCH ``params`` (percent units)."""
    return {"codec": CODEC_VERSION, "garch": params.to_dict(),
            "attrs": {k: _enc(k, v) for k, v in sorted(vars(features).items())}}


def decode(data: dict[str, Any]) -> IncrementalFeatures:
    """Inverse of :func:`encode`: an object whose next ``update`` equals the original's.

    Raises:
        ValueError: unknown codec version, or attributes that do not match this ``tm_quant``.
    """
    if data.get("codec") != CODEC_VERSION:
        raise ValueError(f"feature state codec {data.get('codec')!r} != {CODEC_VERSION}")
    params = GarchParams.from_dict(data["garch"])
    out = IncrementalFeatures(params)
    attrs = data["attrs"]
    if set(attrs) != set(vars(out)):
        raise ValueError("feature state does not match this IncrementalFeatures: "
                         f"{sorted(set(attrs) ^ set(vars(out)))}")
    for k, v in attrs.items():
        setattr(out, k, _dec(v, params))
    return out


def garch_params(data: dict[str, Any]) -> GarchParams:
    """The GARCH parameters an encoded state was built with."""
    return GarchParams.from_dict(data["garch"])
