"""``tm paper --resume``: continue the last paper run instead of starting a new one.

A run is its stream namespace (everything the mesh published and its services' state, in Redis),
its database, and its paper venue's journal (the account: :mod:`tm_exchange_sim.journal`). After
``tm down`` or a reboot (the embedded Redis keeps an append-only file), ``--resume`` starts the
mesh again on the same namespace, symbols, equity and shadow candidate: the services go on from
their consumer groups and saved state, ingest backfills the bars it missed since its last one,
the venue replays its journal, and the report covers the whole run. It refuses, with the reason,
when there is nothing to continue: no run recorded, a run from before venue journals, a journal
that is gone, or streams no longer in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from tm_common.errors import ConfigError

from tm_app.paper_report import read_last_run


class NothingToResume(ConfigError):
    """The last paper run cannot be continued (the reason is the message)."""


@dataclass(frozen=True)
class PriorRun:
    namespace: str
    started: datetime
    symbols: tuple[str, ...]
    equity: Decimal
    shadow: str | None
    venue_journal: Path
    resumed_at: tuple[str, ...]


def prior_run(paper_dir: Path) -> PriorRun:
    """The last run recorded under ``paper_dir``, to continue.

    Raises:
        NothingToResume: none recorded, or one whose account cannot be restored.
    """
    doc = read_last_run(paper_dir)
    if doc is None:
        raise NothingToResume(f"no paper run recorded under {paper_dir} (start one with "
                              "`tm paper`)")
    journal = doc.get("venue_journal")
    if not journal:
        raise NothingToResume(f"the last run ({doc['namespace']}) kept no venue journal (it "
                              "predates them): its paper account cannot be restored; start a "
                              "new run")
    if not Path(journal).is_file():
        raise NothingToResume(f"the last run's venue journal {journal} is gone: its paper "
                              "account cannot be restored; start a new run")
    return PriorRun(namespace=doc["namespace"], started=datetime.fromisoformat(doc["started_at"]),
                    symbols=tuple(doc["symbols"]), equity=Decimal(doc["initial_equity"]),
                    shadow=doc.get("shadow"), venue_journal=Path(journal),
                    resumed_at=tuple(doc.get("resumed_at", ())))


def check_streams(redis_url: str, run: PriorRun) -> None:
    """Raises :class:`NothingToResume` when the run's bars are no longer in Redis (a Redis
    without persistence was restarted, or the namespace was deleted): the services would start
    from nothing while the venue holds the old account."""
    import redis
    from tm_common.bus.streams import MD_BAR, Streams

    r = redis.Redis.from_url(redis_url)
    try:
        bars = r.xlen(Streams(run.namespace).key(MD_BAR))
    finally:
        r.close()
    if not bars:
        raise NothingToResume(f"the last run's streams ({run.namespace}) are no longer in Redis: "
                              "its record cannot go on; start a new run")
