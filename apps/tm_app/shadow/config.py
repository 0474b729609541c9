"""Shadow book settings (``TM_SHADOW_*``; shared fields ``TM_*``).

``TM_NAMESPACE`` is production's namespace, as in every other process of the mesh: the book reads
its market streams there. The book's own streams live under ``book_namespace`` (default
``<namespace>shadow:<candidate>:``), which is wiped when the book starts: a book is a pure function
of production's market streams and its candidate, so a restarted book replays them from the start
and reaches the same state (see :mod:`tm_app.shadow.book`).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from tm_common.settings import APP_ENV_PREFIXES, CommonSettings

SHADOW_PORT = 8109
NEWEST_REFUSED = "newest-refused"
#: a candidate whose gates passed and that still collects the forward evidence it needs to be
#: promoted (:func:`tm_app.shadow.pinned.resolve_candidate`)
AWAITING_EVIDENCE = "awaiting-evidence"
#: the default: :data:`AWAITING_EVIDENCE` when there is one, else :data:`NEWEST_REFUSED`
AUTO = "auto"
CANDIDATE_CHOICES = (AUTO, AWAITING_EVIDENCE, NEWEST_REFUSED)
#: The run's mode (``TM_MODE``) → the evidence it gives (:mod:`tm_common.models.evidence`).
EVIDENCE_MODE = {"replay": "replay", "backtest": "replay", "paper": "paper", "testnet": "paper",
                 "live": "live"}


class ShadowSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=APP_ENV_PREFIXES["shadow"])
    service_name: str = "shadow"
    http_port: int = SHADOW_PORT
    candidate: str = Field(default=AUTO, description="signal model version to shadow, "
                           "awaiting-evidence (a candidate whose gates passed, collecting the "
                           "forward evidence it needs to be promoted), newest-refused (the newest "
                           "one the gates kept out) or auto (the first, else the second)")
    book_namespace: str = Field(default="", description="the book's own stream prefix; empty = "
                                "<namespace>shadow:<candidate>:; must contain 'shadow'")
    initial_equity_usdt: Decimal = Field(default=Decimal(100000), gt=0,
                                         description="the paper account's starting balance")
    slippage_bps: Decimal = Field(default=Decimal(2), ge=0, description="paper fills' slippage")
    seed: int = Field(default=42, description="paper venue seed")
    instruments_file: Path | None = Field(default=None, description="the paper account's "
                                          "instruments (an instruments-info answer: under "
                                          "tm paper, the market's, kept current by its relay), "
                                          "read again whenever it is rewritten; unset or not "
                                          "there yet: the shipped filters")
    from_ms: int = Field(default=0, ge=0, description="mirror market events of bars opening at "
                         "or after this time (ms UTC); 0 = all that production's streams hold")
    flush_after_s: float = Field(default=30.0, gt=0, description="a bar time missing a symbol's "
                                 "bar is traded after this long without new market events")
    evidence_every_bars: int = Field(default=6, ge=1, description="refresh the candidate's "
                                     "shadow record in the registry every this many bar times")
    candidate_check_s: float = Field(default=300.0, ge=0, description="with auto or "
                                     "awaiting-evidence: ask the registry this often which "
                                     "candidate the choice names now, and trade that one from "
                                     "the start of production's streams when it changed (a "
                                     "newly trained candidate, the last one promoted); 0 = "
                                     "the one resolved at start until a restart")

    @field_validator("book_namespace")
    @classmethod
    def _shadow_namespace(cls, v: str) -> str:
        if v and "shadow" not in v:
            raise ValueError("a shadow book's namespace must contain 'shadow' (it is wiped at "
                             f"start), got {v!r}")
        return v

    def namespace_for(self, candidate: str) -> str:
        """The book's stream prefix for ``candidate``; never production's."""
        ns = self.book_namespace or f"{self.namespace}shadow:{candidate}:"
        if ns == self.namespace:
            raise ValueError(f"the shadow book's namespace {ns!r} is production's")
        return ns
