"""Every table of Cockpit, on one MetaData (`metadata`), as SQLAlchemy Core `Table` objects.

Split by concern: account (accounts, admins, SSO, model catalog), directory (console and
copilot orgs, teams, users, members, org admins), policy (model grants, features, rate
limits, guardrails), copilot (agents, connections, marketplace), budget (plans, allocations,
overrides) and runtime (ledger, cycles, audit, apply runs, locks and journal, virtual keys).
Conventions shared by all of them (UUID ids, timestamps, scopes by natural key with ``''``
for keyless scopes) are in `cockpit.store.tables.base`.
"""

from cockpit.store.tables.account import account_admins, account_sso, accounts, model_deployments, models
from cockpit.store.tables.base import (
    DOMAINS,
    KEYLESS_SCOPE_TYPES,
    NAMING_CONVENTION,
    SCOPE_TYPES,
    UtcDateTime,
    metadata,
)
from cockpit.store.tables.budget import budget_allocations, budget_overrides, budget_plans
from cockpit.store.tables.copilot import (
    agent_grants,
    agent_guardrails,
    agents,
    connection_grants,
    connections,
    marketplace_grants,
    marketplace_listings,
)
from cockpit.store.tables.directory import (
    DIRECTORIES,
    DirectoryTables,
    console_org_admins,
    console_orgs,
    console_team_members,
    console_teams,
    console_users,
    copilot_org_admins,
    copilot_orgs,
    copilot_team_members,
    copilot_teams,
    copilot_users,
)
from cockpit.store.tables.policy import (
    feature_entitlements,
    guardrail_assignments,
    guardrail_patterns,
    guardrail_presets,
    model_grants,
    rate_limits,
)
from cockpit.store.tables.runtime import (
    apply_journal,
    apply_locks,
    apply_runs,
    audit_events,
    budget_counters,
    budget_cycles,
    budget_reservations,
    rate_counters,
    resource_origins,
    usage_ledger,
    virtual_keys,
)

__all__ = [
    "DIRECTORIES",
    "DOMAINS",
    "KEYLESS_SCOPE_TYPES",
    "NAMING_CONVENTION",
    "SCOPE_TYPES",
    "DirectoryTables",
    "UtcDateTime",
    "account_admins",
    "account_sso",
    "accounts",
    "agent_grants",
    "agent_guardrails",
    "agents",
    "apply_journal",
    "apply_locks",
    "apply_runs",
    "audit_events",
    "budget_allocations",
    "budget_counters",
    "budget_cycles",
    "budget_reservations",
    "budget_overrides",
    "budget_plans",
    "connection_grants",
    "connections",
    "console_org_admins",
    "console_orgs",
    "console_team_members",
    "console_teams",
    "console_users",
    "copilot_org_admins",
    "copilot_orgs",
    "copilot_team_members",
    "copilot_teams",
    "copilot_users",
    "feature_entitlements",
    "guardrail_assignments",
    "guardrail_patterns",
    "guardrail_presets",
    "marketplace_grants",
    "marketplace_listings",
    "metadata",
    "model_deployments",
    "model_grants",
    "models",
    "rate_counters",
    "rate_limits",
    "resource_origins",
    "usage_ledger",
    "virtual_keys",
]
