"""``portfolio_snapshots.transfers``: the cumulative external flows the portfolio booked
(``BalanceReconciled``: deposits, withdrawals, a balance other than the configured initial
equity), so that a stored snapshot's cash is ``initial + transfers + realised - fees - funding``.
Rows written before it are 0 (2026-12-07)."""
from tm_common.db.migrations import ddl

revision = "0005_snapshot_transfers"
down_revision = "0004_snapshot_key"

UPGRADE = """
ALTER TABLE portfolio_snapshots ADD COLUMN transfers {decimal} DEFAULT '0' NOT NULL;
"""

DOWNGRADE = """
ALTER TABLE portfolio_snapshots DROP COLUMN transfers;
"""


def upgrade() -> None:
    ddl.run(UPGRADE)


def downgrade() -> None:
    ddl.run(DOWNGRADE)
