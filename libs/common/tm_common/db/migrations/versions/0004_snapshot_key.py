"""``portfolio_snapshots.bar_time_ms`` loses the sequence default that 0001 gave it on PostgreSQL
(``BIGSERIAL``, see ``ddl``): a snapshot is keyed by its bar time, which the portfolio always
writes, so a row without one must be refused, not numbered from a sequence. SQLite never had a
default: nothing runs there (2026-12-06)."""
from tm_common.db.migrations import ddl

revision = "0004_snapshot_key"
down_revision = "0003_audit"

UPGRADE = """
ALTER TABLE portfolio_snapshots ALTER COLUMN bar_time_ms DROP DEFAULT;

DROP SEQUENCE portfolio_snapshots_bar_time_ms_seq;
"""

DOWNGRADE = """
CREATE SEQUENCE portfolio_snapshots_bar_time_ms_seq OWNED BY portfolio_snapshots.bar_time_ms;

ALTER TABLE portfolio_snapshots ALTER COLUMN bar_time_ms
    SET DEFAULT nextval('portfolio_snapshots_bar_time_ms_seq');
"""


def upgrade() -> None:
    ddl.run(UPGRADE, only="postgresql")


def downgrade() -> None:
    ddl.run(DOWNGRADE, only="postgresql")
