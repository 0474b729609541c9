"""The audit trail: one row per operator or safety action (arming, kill, breaker reset, loss
limit trip, model promotion and rollback).

Revision ID: 0003_audit
Revises: 0002_funding
Create Date: 2026-12-20

Types are spelled out here, as in 0001, so that this revision keeps creating the same DDL.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_audit"
down_revision: str | Sequence[str] | None = "0002_funding"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("audit_id", sa.String(64), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("what", sa.Text, nullable=False),
        sa.Column("why", sa.Text, nullable=False, server_default=""),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("audit_id", name="pk_audit"),
    )
    op.create_index("ix_audit_kind_at_ms", "audit", ["kind", "at_ms"])
    op.create_index("ix_audit_at_ms", "audit", ["at_ms"])


def downgrade() -> None:
    op.drop_index("ix_audit_at_ms", table_name="audit")
    op.drop_index("ix_audit_kind_at_ms", table_name="audit")
    op.drop_table("audit")
