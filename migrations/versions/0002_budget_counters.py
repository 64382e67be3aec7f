"""The proxy's budget counters and open reservations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Frozen like 0001: plain SQLAlchemy types, nothing imported from cockpit.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEDGER_MONEY = sa.Numeric(24, 8)


def _money(name: str) -> sa.Column:
    return sa.Column(name, LEDGER_MONEY, server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "budget_counters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scope", sa.String(520), nullable=False),
        _money("used"),
        _money("reserved"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_counters")),
        sa.UniqueConstraint("account_id", "window_start", "scope", name=op.f("uq_budget_counters_account_id_window_start_scope")),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scopes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("amount", LEDGER_MONEY, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_reservations")),
    )
    op.create_index(op.f("ix_budget_reservations_expires_at"), "budget_reservations", ["expires_at"])


def downgrade() -> None:
    op.drop_table("budget_reservations")
    op.drop_table("budget_counters")
