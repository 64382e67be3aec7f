"""Routing and rate limits: model deployments and fallbacks, RateLimits, the limiter's counters.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-07

Frozen like 0001: plain SQLAlchemy types, nothing imported from cockpit. A model keeps its one
deployment in ``models.litellm`` (now NULL when it lists ``model_deployments`` instead);
``rate_limits`` holds one row per limit of a RateLimits document (``model_name`` and ``per``
are ``''``, not NULL, so the unique constraint holds on both databases); ``rate_counters``
counts requests and tokens per counter key and minute when the limiter has no Redis.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE_TYPES = ("account", "org", "team", "user", "agent", "pool")
DOMAINS = ("console", "copilot")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _one_of(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=op.f(f"ck_{table}_{column}"))


def _timestamps() -> list:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.alter_column("litellm", existing_type=JSON, nullable=True, existing_server_default=sa.text("'{}'"))
        batch.add_column(sa.Column("fallbacks", JSON, server_default=sa.text("'[]'"), nullable=False))
        batch.add_column(sa.Column("timeout_seconds", sa.Float(), nullable=True))

    op.create_table(
        "model_deployments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "model_id",
            sa.Uuid(),
            sa.ForeignKey("models.id", ondelete="CASCADE", name=op.f("fk_model_deployments_model_id_models")),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("litellm", JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("api_key_encrypted", sa.Text(), nullable=True),
        sa.Column("api_key_fingerprint", sa.Text(), nullable=True),
        sa.Column("weight", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("rpm", sa.BigInteger(), nullable=True),
        sa.Column("tpm", sa.BigInteger(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_deployments")),
        sa.UniqueConstraint("model_id", "name", name=op.f("uq_model_deployments_model_id_name")),
    )

    op.create_table(
        "rate_limits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "account_id",
            sa.Uuid(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE", name=op.f("fk_rate_limits_account_id_accounts")),
            nullable=False,
        ),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("scope_type", sa.String(16), nullable=False),
        sa.Column("scope_key", sa.String(512), server_default=sa.text("''"), nullable=False),
        sa.Column("model_name", sa.String(200), server_default=sa.text("''"), nullable=False),
        sa.Column("per", sa.String(8), server_default=sa.text("''"), nullable=False),
        sa.Column("rpm", sa.BigInteger(), nullable=True),
        sa.Column("tpm", sa.BigInteger(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limits")),
        sa.UniqueConstraint(
            "account_id", "domain", "scope_type", "scope_key", "model_name", "per",
            name=op.f("uq_rate_limits_account_domain_scope_model_per"),
        ),
        _one_of("rate_limits", "domain", DOMAINS),
        _one_of("rate_limits", "per", ("", "user")),
        _one_of("rate_limits", "scope_type", SCOPE_TYPES),
        sa.CheckConstraint(
            "(scope_type IN ('account', 'pool')) = (scope_key = '')",
            name=op.f("ck_rate_limits_scope_key"),
        ),
    )

    op.create_table(
        "rate_counters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_counters")),
        sa.UniqueConstraint("key", "window", name=op.f("uq_rate_counters_key_window")),
    )


def downgrade() -> None:
    op.drop_table("rate_counters")
    op.drop_table("rate_limits")
    op.drop_table("model_deployments")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("timeout_seconds")
        batch.drop_column("fallbacks")
        batch.alter_column("litellm", existing_type=JSON, nullable=False, existing_server_default=sa.text("'{}'"))
