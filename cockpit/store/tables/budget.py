"""Budget plans with their per-scope allocations and overrides (copilot credits).

Plans and allocations belong to the config; renewal writes cycle records
(`cockpit.store.tables.runtime.budget_cycles`) and never touches these tables. "At most one
active plan per account" is checked by validation, not by a partial index, so apply may
switch the active plan inside one transaction in any order.
"""

from __future__ import annotations

import sqlalchemy as sa

from cockpit.store.tables.base import (
    CREDITS,
    account_column,
    flag_column,
    id_column,
    metadata,
    name_column,
    one_of,
    parent_column,
    protect_column,
    scope_checks,
    scope_columns,
    timestamp_columns,
)

budget_plans = sa.Table(
    "budget_plans",
    metadata,
    id_column(),
    account_column(),
    name_column(),
    sa.Column("cycle", sa.String(16), nullable=False, server_default=sa.text("'monthly'")),
    flag_column("active", True),
    flag_column("allow_overflow", False),
    protect_column(),
    *timestamp_columns(),
    sa.UniqueConstraint("account_id", "name"),
    one_of("cycle", ("monthly", "quarterly")),
)

# ``source`` says whether the credits were written by hand or computed by
# ``distribute_equally``, so export can give the config back in the shape it was written.
budget_allocations = sa.Table(
    "budget_allocations",
    metadata,
    id_column(),
    parent_column("plan_id", "budget_plans.id"),
    *scope_columns(),
    sa.Column("credits", CREDITS, nullable=False),
    sa.Column("overflow_cap", CREDITS),
    sa.Column("source", sa.String(16), nullable=False, server_default=sa.text("'manual'")),
    *timestamp_columns(),
    sa.UniqueConstraint("plan_id", "scope_type", "scope_key"),
    one_of("source", ("manual", "equal")),
    *scope_checks(),
)

budget_overrides = sa.Table(
    "budget_overrides",
    metadata,
    id_column(),
    parent_column("plan_id", "budget_plans.id"),
    *scope_columns(),
    sa.Column("credits", CREDITS, nullable=False),
    sa.Column("reason", sa.Text()),
    *timestamp_columns(),
    sa.UniqueConstraint("plan_id", "scope_type", "scope_key"),
    *scope_checks(),
)
