"""Model artifacts and the model registry, shared by the trainer and the services that load models.

- :mod:`tm_common.models.bundle`: :class:`Bundle` (a deterministic stored zip of ``manifest.json``
  + ``.json``/``.npz``/``.ubj`` members, never pickles), ``npz_bytes``/``load_npz``, ``calibrate``
  and the manifest contracts of kinds ``signal`` and ``regime`` (in that module's docstring).
- :mod:`tm_common.models.registry`: :class:`ModelRegistry` (register / get / production / list /
  promote / rollback on the ``model_registry`` table; PostgreSQL or SQLite).
- :mod:`tm_common.models.cache`: :class:`ModelCache` (a service's parsed models of one kind,
  loaded from the registry and cached by version; registry errors translated; readiness reason).
- :mod:`tm_common.models.lifecycle`: :class:`ModelLifecycle` (a handler's first start, restart
  and hot reload on ``models.promoted``).
- :mod:`tm_common.models.metrics`: :class:`ModelMetrics` (``tm_<service>_model_*`` gauges).
"""

from tm_common.models.bundle import (
    ALLOWED_EXTENSIONS,
    MANIFEST,
    Bundle,
    BundleError,
    calibrate,
    canonical_json,
    load_npz,
    npz_bytes,
    validate_manifest,
)
from tm_common.models.registry import ModelRecord, ModelRegistry, RegistryError

__all__ = [
    "ALLOWED_EXTENSIONS",
    "MANIFEST",
    "Bundle",
    "BundleError",
    "ModelRecord",
    "ModelRegistry",
    "RegistryError",
    "calibrate",
    "canonical_json",
    "load_npz",
    "npz_bytes",
    "validate_manifest",
]
