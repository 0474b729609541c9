"""Every stream name in one place, with the namespace prefix.

Names are logical (``md.bar``); :class:`Streams` turns them into Redis keys with the configured
prefix (``tm:`` by default), so several environments can share one Redis. For Redis Cluster, use a
prefix with a hash tag (``{tm}:``) so that one transaction's keys share a slot.
"""

from __future__ import annotations

from dataclasses import dataclass

MD_BAR = "md.bar"
MD_DVOL = "md.dvol"
MD_FUNDING = "md.funding"         # settled funding rates (ingest), for signal
REGIME_STATE = "regime.state"
SIGNAL_TL = "signal.tl"
SIZING_TARGET = "sizing.target"
RISK_ORDER = "risk.order"
RISK_REJECTION = "risk.rejection"
RISK_BREAKER = "risk.breaker"
EXEC_REPORT = "exec.report"
PORTFOLIO_SNAPSHOT = "portfolio.snapshot"
MODELS_PROMOTED = "models.promoted"
EXEC_VENUE = "exec.venue"            # executor-internal: fills/states seen by its WS and poller
RISK_COMMAND = "risk.command"        # breaker trip/reset and watchdog ticks, as events
SIZER_COMMAND = "sizer.command"      # live join-timeout flushes
MD_MARK = "md.mark"                  # intra-bar marks from the public ticker (ingest, live)
PORTFOLIO_VALUATION = "portfolio.valuation"   # intra-bar valuations of the book, for risk

ALL_STREAMS: tuple[str, ...] = (
    MD_BAR, MD_DVOL, MD_FUNDING, REGIME_STATE, SIGNAL_TL, SIZING_TARGET, RISK_ORDER, RISK_REJECTION,
    RISK_BREAKER, EXEC_REPORT, PORTFOLIO_SNAPSHOT, MODELS_PROMOTED, EXEC_VENUE,
    RISK_COMMAND, SIZER_COMMAND, MD_MARK, PORTFOLIO_VALUATION,
)

DLQ_SUFFIX = ".dlq"

# Approximate retention per stream (XADD MAXLEN ~): far above any normal lag. PostgreSQL is the
# durable record; streams are the transport. Per-bar streams see ~6 entries/day/instrument.
DEFAULT_MAXLEN = 100_000
# Intra-bar streams see one entry per symbol and poll (60 s: ~4,300/day for 3 symbols): 50,000
# keeps over a week.
MAXLEN: dict[str, int] = {MD_BAR: 200_000, MD_DVOL: 10_000, MD_FUNDING: 50_000,
                          MODELS_PROMOTED: 10_000, MD_MARK: 50_000, PORTFOLIO_VALUATION: 50_000}


def dlq(stream: str) -> str:
    """The dead-letter stream of ``stream``."""
    return stream + DLQ_SUFFIX


def maxlen(stream: str) -> int:
    """Approximate retention (entries) for a logical stream name."""
    base = stream.removesuffix(DLQ_SUFFIX)
    return MAXLEN.get(base, DEFAULT_MAXLEN)


@dataclass(frozen=True)
class Streams:
    """Maps logical stream names to Redis keys under ``prefix``."""

    prefix: str = "tm:"

    def key(self, stream: str) -> str:
        return self.prefix + stream

    def logical(self, key: str) -> str:
        if not key.startswith(self.prefix):
            raise ValueError(f"key {key!r} is outside namespace {self.prefix!r}")
        return key[len(self.prefix):]

    def state_key(self, group: str, consumer: str) -> str:
        """Where a consumer's handler state is saved (atomically with its acks)."""
        return f"{self.prefix}state:{group}:{consumer}"
