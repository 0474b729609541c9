"""Signal model families: the registry of what ``tm train --family`` trains and the signal
service serves (interface: :mod:`tm_quant.families.base`).

**The one place a family is registered** is :data:`FAMILIES` below: a module of this package
defines ``FAMILY = SignalFamily(...)`` and is added to the tuple. Nothing else finds families: a
bundle names its family by a string, and the signal service looks that string up here and
refuses any other (it never imports a module a bundle names). Adding a family is a code change,
reviewed and deployed like any other; the trainer image and the signal service image must carry
the same ``tm_quant`` for a family's bundles to load.

The built-in family, :data:`BUILTIN` (``xgboost``), is not in the table: its trainer is
``tm_trainer.model`` (transfer learning) and the service serves it through its booster path.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tm_quant.families import forest, logistic, trend
from tm_quant.families.base import BUILTIN, Arrays, SignalFamily, TrainRows


def _table(*families: SignalFamily) -> Mapping[str, SignalFamily]:
    out: dict[str, SignalFamily] = {}
    for f in families:
        if f.name in out:
            raise ValueError(f"signal family {f.name!r} registered twice")
        out[f.name] = f
    return MappingProxyType(out)


#: name → family; register a new family by adding its ``FAMILY`` here.
FAMILIES: Mapping[str, SignalFamily] = _table(
    logistic.FAMILY,
    forest.FAMILY,
    trend.FAMILY,
)


def known() -> tuple[str, ...]:
    """Every family name this code can train and serve: the built-in first, then the table's."""
    return (BUILTIN, *sorted(FAMILIES))


class UnknownFamily(ValueError):
    """A family name that is not registered in this code."""


def get(name: str) -> SignalFamily:
    """The registered family ``name``.

    Raises:
        UnknownFamily: ``name`` is not in :data:`FAMILIES` (the message lists the known ones).
    """
    fam = FAMILIES.get(name) if isinstance(name, str) else None
    if fam is None:
        raise UnknownFamily(f"unknown signal family {name!r}: this code knows "
                            f"{', '.join(known())} (a family is registered in "
                            "tm_quant/families/__init__.py, never loaded from a bundle)")
    return fam


__all__ = ["BUILTIN", "FAMILIES", "Arrays", "SignalFamily", "TrainRows", "UnknownFamily", "get",
           "known"]
