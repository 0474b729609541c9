"""Where a consumer's time goes, by stage: the profile of the hot path (``/status`` ``stages``,
``bench/bench_mesh.py`` and ``bench/bench_backtest.py`` print it).

Stages, in ``time.perf_counter_ns`` nanoseconds summed since start:

- ``read``: reads that returned entries (a blocking read's wait for the first entry included);
- ``wait``: reads that returned nothing (idle: blocked until the read timed out, or a poll);
- ``decode``: signature check and ``Envelope.from_fields``;
- ``handle``: the handler's ``handle``;
- ``encode``: the outputs' envelopes and the handler's ``snapshot``;
- ``commit``: the commit (outputs + ack + state) round trip.

Two clock reads per stage per entry (~100 ns each) is the whole cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

STAGES = ("read", "wait", "decode", "handle", "encode", "commit")


@dataclass
class StageTimes:
    """Nanoseconds per stage; ``entries`` handled (committed or dead-lettered), ``reads``
    returning entries, ``state_writes`` saved snapshots, ``state_skips`` commits whose state was
    unchanged and not rewritten."""

    read: int = 0
    wait: int = 0
    decode: int = 0
    handle: int = 0
    encode: int = 0
    commit: int = 0
    entries: int = 0
    reads: int = 0
    state_writes: int = 0
    state_skips: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def merge(docs: list[dict[str, int]]) -> dict[str, int]:
    """The sum of several :meth:`StageTimes.as_dict` documents."""
    out: dict[str, int] = {}
    for d in docs:
        for k, v in d.items():
            out[k] = out.get(k, 0) + int(v)
    return out
