"""Audit events: when each reached OpenObserve, so events that did not are shipped later.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-07

Frozen like 0001: plain SQLAlchemy types, nothing imported from cockpit. NULL means not shipped
yet: the next `cockpit apply` (or `cockpit audit ship`) sends it. Events written before this
revision count as shipped at their creation: until now an event that failed to ship was
documented as never re-shipped, so sending the whole history now would surprise.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_audit_events_shipped_at", ["shipped_at"])
    op.execute("UPDATE audit_events SET shipped_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index("ix_audit_events_shipped_at")
        batch.drop_column("shipped_at")
