"""Copilot resources: agents, connections and marketplace listings, each with its grants.

Grant rows belong to their parent (cascade); their scopes are natural keys in the copilot
directory (see `cockpit.store.tables.base`).
"""

from __future__ import annotations

import sqlalchemy as sa

from cockpit.store.tables.base import (
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

agents = sa.Table(
    "agents",
    metadata,
    id_column(),
    account_column(),
    name_column(),
    sa.Column("description", sa.Text()),
    json_column("definition"),
    protect_column(),
    *timestamp_columns(),
    sa.UniqueConstraint("account_id", "name"),
)

agent_guardrails = sa.Table(
    "agent_guardrails",
    metadata,
    id_column(),
    parent_column("agent_id", "agents.id"),
    parent_column("preset_id", "guardrail_presets.id", index=True),
    *timestamp_columns(),
    sa.UniqueConstraint("agent_id", "preset_id"),
)

agent_grants = sa.Table(
    "agent_grants",
    metadata,
    id_column(),
    parent_column("agent_id", "agents.id"),
    *scope_columns(),
    *timestamp_columns(),
    sa.UniqueConstraint("agent_id", "scope_type", "scope_key"),
    *scope_checks(),
)

# ``secret`` is one encrypted JSON object of all the connection's secret fields, with a keyed
# fingerprint so a plan can tell that the referenced secret changed without decrypting it.
# ``secret_refs`` keeps the references themselves (``${env:NAME}``, ``${file:path}``, by field),
# which are not secret, so export can write the config back as it was.
connections = sa.Table(
    "connections",
    metadata,
    id_column(),
    account_column(),
    name_column(),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("description", sa.Text()),
    sa.Column(
        "credential_visibility",
        sa.String(16),
        nullable=False,
        server_default=sa.text("'use_only'"),
    ),
    flag_column("allow_user_self_manage", False),
    json_column("config"),
    sa.Column("secret_encrypted", sa.Text()),
    sa.Column("secret_fingerprint", sa.Text()),
    json_column("secret_refs"),
    protect_column(),
    *timestamp_columns(),
    sa.UniqueConstraint("account_id", "name"),
    one_of("type", ("openapi", "mcp", "composio")),
    one_of("credential_visibility", ("use_only", "self_managed")),
)

connection_grants = sa.Table(
    "connection_grants",
    metadata,
    id_column(),
    parent_column("connection_id", "connections.id"),
    *scope_columns(),
    flag_column("can_manage", False),
    *timestamp_columns(),
    sa.UniqueConstraint("connection_id", "scope_type", "scope_key"),
    *scope_checks(),
)

# ``entity_name`` names an agent or a connection of the same account; it is not a foreign
# key because it can point at either table (validation checks that it exists).
marketplace_listings = sa.Table(
    "marketplace_listings",
    metadata,
    id_column(),
    account_column(),
    sa.Column("entity_type", sa.String(16), nullable=False),
    sa.Column("entity_name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("description", sa.Text()),
    flag_column("published", True),
    flag_column("featured", False),
    flag_column("verified", False),
    sa.Column("pricing_model", sa.String(32), nullable=False, server_default=sa.text("'free'")),
    sa.Column("version", sa.String(32), nullable=False, server_default=sa.text("'1.0.0'")),
    sa.Column("author", sa.String(200)),
    protect_column(),
    *timestamp_columns(),
    sa.UniqueConstraint("account_id", "entity_type", "entity_name"),
    one_of("entity_type", ("agent", "connection")),
)

marketplace_grants = sa.Table(
    "marketplace_grants",
    metadata,
    id_column(),
    parent_column("listing_id", "marketplace_listings.id"),
    *scope_columns(),
    *timestamp_columns(),
    sa.UniqueConstraint("listing_id", "scope_type", "scope_key"),
    *scope_checks(),
)
