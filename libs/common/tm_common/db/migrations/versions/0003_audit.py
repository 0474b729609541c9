"""The audit trail: one row per operator or safety action (arming, kill, breaker reset, loss
limit trip, model promotion and rollback) (2026-12-20)."""
from tm_common.db.migrations import ddl

revision = "0003_audit"
down_revision = "0002_funding"

UPGRADE = """
CREATE TABLE audit (
    audit_id VARCHAR(64) NOT NULL,
    at_ms BIGINT NOT NULL,
    kind VARCHAR(32) NOT NULL,
    what TEXT NOT NULL,
    why TEXT DEFAULT '' NOT NULL,
    who VARCHAR(200) NOT NULL,
    source VARCHAR(32) NOT NULL,
    event_id VARCHAR(64),
    CONSTRAINT pk_audit PRIMARY KEY (audit_id)
);

CREATE INDEX ix_audit_kind_at_ms ON audit (kind, at_ms);

CREATE INDEX ix_audit_at_ms ON audit (at_ms);
"""

DOWNGRADE = """
DROP INDEX ix_audit_at_ms;
DROP INDEX ix_audit_kind_at_ms;
DROP TABLE audit;
"""


def upgrade() -> None:
    ddl.run(UPGRADE)


def downgrade() -> None:
    ddl.run(DOWNGRADE)
