"""One exception tree: the shared errors are defined once, in ``tm_common.errors``, with a
deliberate base; every project error subclasses ``TradeMatrixError`` (the exceptions that do not
yet are listed below, so that no new one appears unnoticed)."""

from __future__ import annotations

import ast
import builtins
from collections import Counter
from pathlib import Path

import pytest
from tm_common import errors
from tm_common.errors import (
    ModelUnusable,
    NotReady,
    PermanentError,
    TradeMatrixError,
    TransientError,
    VenueError,
    VenueUnavailable,
)

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [p for d in ("libs", "services", "apps", "trainer") for p in (ROOT / d).rglob("*.py")
           if ".venv" not in p.parts]
ERRORS_PY = ROOT / "libs/common/tm_common/errors.py"

SHARED = ("NotReady", "ModelUnusable", "VenueError")
# the local definitions these replace
RETIRED = ("BadModel", "ModelLoadError", "BadPolicy", "PolicyFormatError")
BUILTIN_EXCEPTIONS = {n for n, v in vars(builtins).items()
                      if isinstance(v, type) and issubclass(v, BaseException)}
# Project exceptions outside the tree, each for a reason (a test or CLI convention, a standard
# library contract): shrink this list, never grow it.
OUTSIDE_THE_TREE = {
    "ActorFormatError",      # tm_quant is pure (no tm_common import); the sizer translates it
    "UnknownFamily",         # tm_quant is pure; the signal service translates it (ModelUnusable)
    "HistoryFileError",      # a FileNotFoundError callers and the CLI catch as such
    "RegistryError",         # a LookupError: "no such model" for the registry's callers
    "BundleError",           # a ValueError wrapped into ModelUnusable by every service
    "LookaheadError",        # an AssertionError: a leakage check in tests and training
    "MalformedAnswer",       # executor venue parsing, translated to a VenueError
    "WsAuthFailed",          # executor private-WS login, translated by its caller
    "UnknownServiceError",   # tm CLI usage error (a ValueError)
    "StackError",            # tm CLI: one-line message for the user
    "InfraError",            # fault drills: the test infrastructure failed
    "DataError",             # trainer: bad training data (a ValueError)
    "RedisServerExited",     # test fixture: the embedded Redis died (an AssertionError)
    "NonStationaryGarch",    # a ValueError from pure quant code, caught by its callers
    "IllegalTransition",     # risk breaker: an illegal trigger (a ValueError, domain)
    "BadVenueRecord",        # executor domain: an unreadable venue record (a ValueError)
    "PipelineStalled",       # ingest lockstep replay: a stuck consumer group
    "BadBar",                # ingest domain: a bar that fails validation (a ValueError)
}


def _class_defs() -> list[tuple[str, Path, list[str]]]:
    out = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                         for b in node.bases]
                out.append((node.name, path, bases))
    return out


DEFS = _class_defs()


@pytest.mark.parametrize("name", SHARED)
def test_shared_errors_are_defined_once_in_tm_common(name):
    where = [p for n, p, _ in DEFS if n == name]
    assert where == [ERRORS_PY], f"{name} defined in {[str(p.relative_to(ROOT)) for p in where]}"


@pytest.mark.parametrize("name", RETIRED)
def test_retired_local_definitions_are_gone(name):
    assert [p for n, p, _ in DEFS if n == name] == []


def test_deliberate_bases():
    assert issubclass(NotReady, TransientError) and not issubclass(NotReady, PermanentError)
    assert issubclass(ModelUnusable, PermanentError) and issubclass(ModelUnusable, ValueError)
    assert issubclass(VenueError, TradeMatrixError)
    assert not issubclass(VenueError, (TransientError, PermanentError))   # decided per kind
    assert issubclass(VenueUnavailable, VenueError) and issubclass(VenueUnavailable,
                                                                    TransientError)


def test_every_tm_common_error_is_in_the_tree():
    found = [v for v in vars(errors).values()
             if isinstance(v, type) and issubclass(v, BaseException) and v.__module__ == errors.__name__]
    assert found and all(issubclass(v, TradeMatrixError) for v in found)


def test_services_use_the_shared_classes():
    from tm_executor.domain import errors as executor_errors
    from tm_executor.preflight import NotReady as ExecutorNotReady
    from tm_ingest.sources.rest import VenueError as IngestVenueError
    from tm_quant.sizing.actor import ActorFormatError
    from tm_regime.domain.model import ModelLoadError as RegimeLoad
    from tm_regime.handler import NotReady as RegimeNotReady
    from tm_regime.models import BadModel as RegimeBad
    from tm_signal.domain.model import ModelLoadError as SignalLoad
    from tm_signal.handler import NotReady as SignalNotReady
    from tm_signal.models import BadModel as SignalBad
    from tm_sizer.domain.policy import PolicyFormatError
    from tm_sizer.handler import NotReady as SizerNotReady
    from tm_sizer.policies import BadPolicy

    assert {ExecutorNotReady, RegimeNotReady, SignalNotReady, SizerNotReady} == {NotReady}
    assert {RegimeLoad, RegimeBad, SignalLoad, SignalBad, PolicyFormatError,
            BadPolicy} == {ModelUnusable}
    assert issubclass(ActorFormatError, ValueError)     # wrapped by the sizer's policy loader
    assert executor_errors.VenueError is VenueError
    assert all(issubclass(executor_errors.ERROR_TYPES[k], VenueError)
               for k in executor_errors.ERROR_TYPES)
    assert IngestVenueError is VenueUnavailable


def test_the_simulators_answer_is_not_a_venue_error():
    from tm_exchange_sim.matching.errors import RetCodeError

    assert issubclass(RetCodeError, TradeMatrixError) and not issubclass(RetCodeError, VenueError)


def test_venue_error_messages():
    assert str(VenueUnavailable("kline BTCUSDT: HTTP 500")) == "kline BTCUSDT: HTTP 500"
    e = VenueError("place_order", "refused", ret_code=110007)
    assert str(e) == "place_order: 110007: refused" and e.code_label == "110007"
    assert VenueError("x", "y", http_status=503).code_label == "http_503"
    assert VenueError("x", "y").code_label == "network"


def test_every_project_error_subclasses_trade_matrix_error():
    bases = {}
    for name, _, b in DEFS:
        bases.setdefault(name, set()).update(b)
    in_tree = {"TradeMatrixError"}
    exceptions = set(BUILTIN_EXCEPTIONS)
    changed = True
    while changed:       # names whose bases reach the tree / any exception (a fixed point)
        changed = False
        for name, b in bases.items():
            if name not in in_tree and b & in_tree:
                in_tree.add(name)
                changed = True
            if name not in exceptions and b & exceptions:
                exceptions.add(name)
                changed = True
    project_errors = {n for n in bases if n in exceptions}
    outside = project_errors - in_tree
    assert outside <= OUTSIDE_THE_TREE, f"new error outside TradeMatrixError: {outside - OUTSIDE_THE_TREE}"
    assert Counter(n for n, _, _ in DEFS if n in in_tree)["TradeMatrixError"] == 1
