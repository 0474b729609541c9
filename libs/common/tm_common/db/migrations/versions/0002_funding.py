"""Funding rates: one row per settled rate of a perpetual (``md.funding``, ``tm backfill``).

Revision ID: 0002_funding
Revises: 0001_initial
Create Date: 2026-12-06

Types are spelled out here, as in 0001, so that this revision keeps creating the same DDL.
"""
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002_funding"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _dec() -> sa.types.TypeEngine[Any]:
    return sa.Numeric().with_variant(sa.String(64), "sqlite")


def upgrade() -> None:
    op.create_table(
        "funding",
        sa.Column("instrument", sa.String(32), nullable=False),
        sa.Column("settle_time_ms", sa.BigInteger, nullable=False),
        sa.Column("rate", _dec(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False, server_default="live"),
        sa.PrimaryKeyConstraint("instrument", "settle_time_ms", name="pk_funding"),
    )


def downgrade() -> None:
    op.drop_table("funding")
