"""Where each applied resource is declared: `resource_origins`, and `audit_events.origin`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Frozen like 0001: plain SQLAlchemy types, nothing imported from cockpit. One row per config
resource (by its row id, in whichever table it lives): the `file:line:column` of the config,
relative to the tenant repo, that declared it when it was last applied. `explain`, the read
API's effective views and the audit show it. Rows of an account go with the account.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "resource_origins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("origin", sa.String(1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_resource_origins_account_id_accounts", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_resource_origins"),
    )
    op.create_index("ix_resource_origins_account_id", "resource_origins", ["account_id"])
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("origin", sa.String(1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("origin")
    op.drop_index("ix_resource_origins_account_id", table_name="resource_origins")
    op.drop_table("resource_origins")
