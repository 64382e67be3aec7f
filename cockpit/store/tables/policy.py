"""Who may use what: model grants, feature entitlements, rate limits and guardrail presets.

Scopes are natural keys (see `cockpit.store.tables.base`). ``model_name`` is not a foreign
key: the catalog and an account's grants may be managed by different workspaces, and
validation already rejects a grant for a model the catalog does not have.
"""

from __future__ import annotations

import sqlalchemy as sa

from cockpit.store.tables.base import (
    DOMAINS,
    NAME_LENGTH,
    account_column,
    flag_column,
    id_column,
    json_column,
    metadata,
    name_column,
    one_of,
    parent_column,
    protect_column,
    scope_checks,
    scope_columns,
    timestamp_columns,
)

model_grants = sa.Table(
    "model_grants",
    metadata,
    id_column(),
    account_column(),
    sa.Column("domain", sa.String(16), nullable=False),
    sa.Column("model_name", sa.String(NAME_LENGTH), nullable=False),
    *scope_columns(),
    sa.Column("access", sa.String(8), nullable=False, server_default=sa.text("'allow'")),
    *timestamp_columns(),
    sa.UniqueConstraint(
        "account_id",
        "domain",
        "model_name",
        "scope_type",
        "scope_key",
        name="uq_model_grants_account_domain_model_scope",
    ),
    one_of("domain", DOMAINS),
    one_of("access", ("allow", "deny")),
    *scope_checks(),
)

feature_entitlements = sa.Table(
    "feature_entitlements",
    metadata,
    id_column(),
    account_column(),
    sa.Column("domain", sa.String(16), nullable=False),
    sa.Column("feature", sa.String(NAME_LENGTH), nullable=False),
    *scope_columns(),
    flag_column("enabled", True),
    json_column("config"),
    *timestamp_columns(),
    sa.UniqueConstraint(
        "account_id",
        "domain",
        "feature",
        "scope_type",
        "scope_key",
        name="uq_feature_entitlements_account_domain_feature_scope",
    ),
    one_of("domain", DOMAINS),
    *scope_checks(),
)

guardrail_presets = sa.Table(
    "guardrail_presets",
    metadata,
    id_column(),
    account_column(),
    sa.Column("code", sa.String(NAME_LENGTH), nullable=False),
    name_column(),
    sa.Column("description", sa.Text()),
    # Which directory the preset's assignments name scopes in.
    sa.Column("domain", sa.String(16), nullable=False, server_default=sa.text("'copilot'")),
    json_column("config"),
    protect_column(),
    *timestamp_columns(),
    sa.UniqueConstraint("account_id", "code"),
    one_of("domain", DOMAINS),
)

guardrail_patterns = sa.Table(
    "guardrail_patterns",
    metadata,
    id_column(),
    parent_column("preset_id", "guardrail_presets.id"),
    name_column(),
    sa.Column("regex", sa.Text(), nullable=False),
    sa.Column("type", sa.String(8), nullable=False, server_default=sa.text("'detect'")),
    flag_column("enabled", True),
    sa.Column("action", sa.String(200)),
    *timestamp_columns(),
    sa.UniqueConstraint("preset_id", "name"),
    one_of("type", ("detect", "block", "allow")),
)

guardrail_assignments = sa.Table(
    "guardrail_assignments",
    metadata,
    id_column(),
    parent_column("preset_id", "guardrail_presets.id"),
    *scope_columns(),
    *timestamp_columns(),
    sa.UniqueConstraint("preset_id", "scope_type", "scope_key"),
    *scope_checks(),
)

# One limit of a `RateLimits` document. ``model_name`` is ``''`` for every model and ``per``
# is ``''`` (the scope as a whole) or ``'user'`` (each user of the scope): empty strings, not
# NULLs, so the unique constraint holds on both databases (see `base`).
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    id_column(),
    account_column(),
    sa.Column("domain", sa.String(16), nullable=False),
    *scope_columns(),
    sa.Column("model_name", sa.String(NAME_LENGTH), nullable=False, server_default=sa.text("''")),
    sa.Column("per", sa.String(8), nullable=False, server_default=sa.text("''")),
    sa.Column("rpm", sa.BigInteger()),
    sa.Column("tpm", sa.BigInteger()),
    *timestamp_columns(),
    sa.UniqueConstraint(
        "account_id",
        "domain",
        "scope_type",
        "scope_key",
        "model_name",
        "per",
        name="uq_rate_limits_account_domain_scope_model_per",
    ),
    one_of("domain", DOMAINS),
    one_of("per", ("", "user")),
    *scope_checks(),
)
