"""${message} (${create_date.date()})."""
from tm_common.db.migrations import ddl

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}

# The SQL this revision runs, frozen, with ddl's placeholders where the dialects differ.
UPGRADE = """
"""

DOWNGRADE = """
"""


def upgrade() -> None:
    ddl.run(UPGRADE)


def downgrade() -> None:
    ddl.run(DOWNGRADE)
