"""Funding rates: one row per settled rate of a perpetual (``md.funding``, ``tm backfill``)
(2026-12-06)."""
from tm_common.db.migrations import ddl

revision = "0002_funding"
down_revision = "0001_initial"

UPGRADE = """
CREATE TABLE funding (
    instrument VARCHAR(32) NOT NULL,
    settle_time_ms BIGINT NOT NULL,
    rate {decimal} NOT NULL,
    source VARCHAR(16) DEFAULT 'live' NOT NULL,
    CONSTRAINT pk_funding PRIMARY KEY (instrument, settle_time_ms)
);
"""


def upgrade() -> None:
    ddl.run(UPGRADE)


def downgrade() -> None:
    ddl.run("DROP TABLE funding")
