"""Accounts (tenants), their admins and SSO, and the global model catalog."""

from __future__ import annotations

import sqlalchemy as sa

from cockpit.store.tables.base import (
    CREDITS,
    EMAIL_LENGTH,
    FACTOR,
    PRICE_PER_MILLION,
    account_column,
    flag_column,
    id_column,
    json_column,
    metadata,
    name_column,
    one_of,
    parent_column,
    protect_column,
    timestamp_columns,
)

accounts = sa.Table(
    "accounts",
    metadata,
    id_column(),
    name_column(),
    sa.Column("alias", sa.String(200)),
    sa.Column("description", sa.Text()),
    # The email domain routes logins to an account, so no two accounts may share one.
    sa.Column("email_domain", sa.String(253)),
    sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'active'")),
    # The config workspace that manages the account (like kubectl's ApplySet); other
    # workspaces never change it.
    sa.Column("workspace", sa.String(200), nullable=False, server_default=sa.text("'default'")),
    sa.Column("monthly_credits", CREDITS, nullable=False, server_default=sa.text("0")),
    sa.Column("overflow_limit", CREDITS, nullable=False, server_default=sa.text("0")),
    sa.Column("credit_factor", FACTOR, nullable=False, server_default=sa.text("1")),
    json_column("feature_pack", '{"features": [], "config": {}}'),
    json_column(
        "model_policy",
        '{"console": {"allow": [], "deny": []}, "copilot": {"allow": [], "deny": []}}',
    ),
    # project_id, organization_id, role_prefix, role_mappings, users, issuer
    json_column("zitadel"),
    protect_column(),
    *timestamp_columns(),
    sa.UniqueConstraint("name"),
    sa.UniqueConstraint("email_domain"),
    sa.Index(None, "workspace"),
    one_of("status", ("active", "suspended")),
)

account_admins = sa.Table(
    "account_admins",
    metadata,
    id_column(),
    account_column(),
    sa.Column("email", sa.String(EMAIL_LENGTH), nullable=False),
    sa.Column("role", sa.String(100), nullable=False, server_default=sa.text("'account_admin'")),
    *timestamp_columns(),
    sa.UniqueConstraint("account_id", "email"),
)

# One row per account. Keys named like ``*secret*`` never reach ``settings``: they are
# encrypted together in ``secret_settings_encrypted`` with an HMAC fingerprint for drift.
account_sso = sa.Table(
    "account_sso",
    metadata,
    id_column(),
    account_column(),
    sa.Column("provider", sa.String(100)),
    flag_column("enabled", False),
    json_column("settings"),
    sa.Column("secret_settings_encrypted", sa.Text()),
    sa.Column("secret_settings_fingerprint", sa.Text()),
    *timestamp_columns(),
    sa.UniqueConstraint("account_id"),
)

# The global catalog, owned by the config that declares it. ``litellm`` holds the non-secret
# parts (model, api_base, extra params); the api key is stored encrypted beside it.
models = sa.Table(
    "models",
    metadata,
    id_column(),
    name_column(),
    sa.Column("description", sa.Text()),
    sa.Column("workspace", sa.String(200), nullable=False, server_default=sa.text("'default'")),
    # NULL when the model lists `deployments` (rows of ``model_deployments``) instead.
    json_column("litellm", nullable=True),
    sa.Column("api_key_encrypted", sa.Text()),
    sa.Column("api_key_fingerprint", sa.Text()),
    sa.Column("input_per_million", PRICE_PER_MILLION, nullable=False, server_default=sa.text("0")),
    sa.Column("output_per_million", PRICE_PER_MILLION, nullable=False, server_default=sa.text("0")),
    sa.Column("cached_input_per_million", PRICE_PER_MILLION),
    # Model names, in the order they are tried; not foreign keys (validation resolves them).
    json_column("fallbacks", "[]"),
    sa.Column("timeout_seconds", sa.Float()),
    protect_column(),
    *timestamp_columns(),
    sa.UniqueConstraint("name"),
)

# A model's deployments when it lists several; secrets as in ``models``.
model_deployments = sa.Table(
    "model_deployments",
    metadata,
    id_column(),
    parent_column("model_id", "models.id"),
    name_column(),
    json_column("litellm"),
    sa.Column("api_key_encrypted", sa.Text()),
    sa.Column("api_key_fingerprint", sa.Text()),
    sa.Column("weight", sa.Integer(), nullable=False, server_default=sa.text("1")),
    sa.Column("rpm", sa.BigInteger()),
    sa.Column("tpm", sa.BigInteger()),
    *timestamp_columns(),
    sa.UniqueConstraint("model_id", "name"),
)
