"""Models: the price of input read from a provider's prompt cache.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Frozen like 0001: plain SQLAlchemy types, nothing imported from cockpit. NULL means the model
declares no cached price: cached input is charged at the input price.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("cached_input_per_million", sa.Numeric(18, 6), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("cached_input_per_million")
