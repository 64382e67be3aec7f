"""Resource types: the row-sized units a plan creates, updates and deletes, and their tables.

Each kind of the config expands into one or more resource types (an `Agent` document into an
agent, its guardrails and its grants). A resource type maps one table: its natural key is the
keys of its parents (foreign-key columns) followed by its own key columns; its fields are
columns compared one by one. The reader, the planner and the executor are generic over this
table of types; nothing in them names a kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, Mapping

AUDIT_DOMAINS = ("iam", "billing", "console", "copilot")


@dataclass(frozen=True)
class ParentRef:
    column: str
    """The foreign-key column of this type's table, e.g. `team_id`."""
    type: str
    """The parent resource type, e.g. `copilot_team`."""


@dataclass(frozen=True)
class ResourceType:
    name: str
    kind: str
    """The config kind that declares it."""
    table: str
    key_columns: tuple[str, ...] = ()
    """Own key columns, after the parents' keys."""
    parents: tuple[ParentRef, ...] = ()
    fields: tuple[str, ...] = ()
    account_scoped: bool = True
    """Has an `account_id` column (all but the account itself and the global model catalog)."""
    secret: str | None = None
    """Secret group: the table has `<secret>_encrypted` and `<secret>_fingerprint` columns."""
    secret_refs: Callable[[Mapping[str, Any]], dict[str, str]] | None = None
    """Where in the fields the `${env:…}`/`${file:…}` references of the secret are."""
    protectable: bool = False
    scales: Mapping[str, int] = field(default_factory=dict)
    """Decimal places of numeric fields, as the columns store them."""
    audit_domain: str | None = None
    """iam, billing, console or copilot; None: the resource's `domain` key column decides."""
    label: str = ""
    """How the plan names the type to people, e.g. "copilot team"."""

    @property
    def display(self) -> str:
        return self.label or self.name.replace("_", " ")


def _directory_types(domain: str) -> list[ResourceType]:
    org_fields = ("description", "is_default_global") if domain == "copilot" else ("description",)
    common = {"kind": "Directory", "audit_domain": domain}
    return [
        ResourceType(f"{domain}_org", table=f"{domain}_orgs", key_columns=("name",), fields=org_fields, label=f"{domain} org", **common),
        ResourceType(f"{domain}_user", table=f"{domain}_users", key_columns=("email",), fields=("display_name", "identity_user_id", "status"), label=f"{domain} user", **common),
        ResourceType(f"{domain}_team", table=f"{domain}_teams", key_columns=("name",), parents=(ParentRef("org_id", f"{domain}_org"),), fields=("description",), label=f"{domain} team", **common),
        ResourceType(
            f"{domain}_team_member",
            table=f"{domain}_team_members",
            parents=(ParentRef("team_id", f"{domain}_team"), ParentRef("user_id", f"{domain}_user")),
            fields=("role",),
            label=f"{domain} team member",
            **common,
        ),
        ResourceType(
            f"{domain}_org_admin",
            table=f"{domain}_org_admins",
            parents=(ParentRef("org_id", f"{domain}_org"), ParentRef("user_id", f"{domain}_user")),
            label=f"{domain} org admin",
            **common,
        ),
    ]


def _sso_refs(fields: Mapping[str, Any]) -> dict[str, str]:
    settings = fields.get("settings") or {}
    return {k: v for k, v in settings.items() if "secret" in k.lower() and isinstance(v, str) and v}


def _model_refs(fields: Mapping[str, Any]) -> dict[str, str]:
    api_key = (fields.get("litellm") or {}).get("api_key")
    return {"api_key": api_key} if api_key else {}


def _connection_refs(fields: Mapping[str, Any]) -> dict[str, str]:
    return dict(fields.get("secret_refs") or {})


SCOPE = ("scope_type", "scope_key")


@cache
def resource_types() -> tuple[ResourceType, ...]:
    """Every resource type, parents before children (the create order)."""
    return (
        ResourceType(
            "account",
            kind="Account",
            table="accounts",
            key_columns=("name",),
            fields=(
                "alias", "description", "email_domain", "status", "monthly_credits",
                "overflow_limit", "credit_factor", "feature_pack", "model_policy", "zitadel",
            ),
            account_scoped=False,
            protectable=True,
            scales={"monthly_credits": 2, "overflow_limit": 2, "credit_factor": 4},
            audit_domain="iam",
        ),
        ResourceType("account_admin", kind="Account", table="account_admins", key_columns=("email",), fields=("role",), audit_domain="iam", label="account admin"),
        ResourceType(
            "account_sso",
            kind="Account",
            table="account_sso",
            fields=("provider", "enabled", "settings"),
            secret="secret_settings",
            secret_refs=_sso_refs,
            audit_domain="iam",
            label="account SSO",
        ),
        ResourceType(
            "model",
            kind="Model",
            table="models",
            key_columns=("name",),
            fields=("description", "litellm", "input_per_million", "output_per_million"),
            account_scoped=False,
            secret="api_key",
            secret_refs=_model_refs,
            protectable=True,
            scales={"input_per_million": 6, "output_per_million": 6},
            audit_domain="iam",
        ),
        *_directory_types("console"),
        *_directory_types("copilot"),
        ResourceType("model_grant", kind="ModelAccess", table="model_grants", key_columns=("domain", "model_name", *SCOPE), fields=("access",), label="model grant"),
        ResourceType("feature_entitlement", kind="Features", table="feature_entitlements", key_columns=("domain", "feature", *SCOPE), fields=("enabled", "config"), label="feature entitlement"),
        ResourceType("guardrail_preset", kind="GuardrailPreset", table="guardrail_presets", key_columns=("code",), fields=("name", "domain", "description", "config"), protectable=True, audit_domain="copilot", label="guardrail preset"),
        ResourceType("guardrail_pattern", kind="GuardrailPreset", table="guardrail_patterns", key_columns=("name",), parents=(ParentRef("preset_id", "guardrail_preset"),), fields=("regex", "type", "enabled", "action"), audit_domain="copilot", label="guardrail pattern"),
        ResourceType("guardrail_assignment", kind="GuardrailPreset", table="guardrail_assignments", key_columns=SCOPE, parents=(ParentRef("preset_id", "guardrail_preset"),), audit_domain="copilot", label="guardrail assignment"),
        ResourceType("agent", kind="Agent", table="agents", key_columns=("name",), fields=("description", "definition"), protectable=True, audit_domain="copilot"),
        ResourceType("agent_guardrail", kind="Agent", table="agent_guardrails", parents=(ParentRef("agent_id", "agent"), ParentRef("preset_id", "guardrail_preset")), audit_domain="copilot", label="agent guardrail"),
        ResourceType("agent_grant", kind="Agent", table="agent_grants", key_columns=SCOPE, parents=(ParentRef("agent_id", "agent"),), audit_domain="copilot", label="agent grant"),
        ResourceType(
            "connection",
            kind="Connection",
            table="connections",
            key_columns=("name",),
            fields=("type", "description", "credential_visibility", "allow_user_self_manage", "config", "secret_refs"),
            secret="secret",
            secret_refs=_connection_refs,
            protectable=True,
            audit_domain="copilot",
        ),
        ResourceType("connection_grant", kind="Connection", table="connection_grants", key_columns=SCOPE, parents=(ParentRef("connection_id", "connection"),), fields=("can_manage",), audit_domain="copilot", label="connection grant"),
        ResourceType(
            "marketplace_listing",
            kind="MarketplaceListing",
            table="marketplace_listings",
            key_columns=("entity_type", "entity_name"),
            fields=("title", "description", "published", "featured", "verified", "pricing_model", "version", "author"),
            protectable=True,
            audit_domain="copilot",
            label="marketplace listing",
        ),
        ResourceType("marketplace_grant", kind="MarketplaceListing", table="marketplace_grants", key_columns=SCOPE, parents=(ParentRef("listing_id", "marketplace_listing"),), audit_domain="copilot", label="marketplace grant"),
        ResourceType("budget_plan", kind="BudgetPlan", table="budget_plans", key_columns=("name",), fields=("cycle", "active", "allow_overflow"), protectable=True, audit_domain="billing", label="budget plan"),
        ResourceType("budget_allocation", kind="BudgetPlan", table="budget_allocations", key_columns=SCOPE, parents=(ParentRef("plan_id", "budget_plan"),), fields=("credits", "overflow_cap", "source"), scales={"credits": 2, "overflow_cap": 2}, audit_domain="billing", label="budget allocation"),
        ResourceType("budget_override", kind="BudgetPlan", table="budget_overrides", key_columns=SCOPE, parents=(ParentRef("plan_id", "budget_plan"),), fields=("credits", "reason"), scales={"credits": 2}, audit_domain="billing", label="budget override"),
    )


@cache
def types_by_name() -> Mapping[str, ResourceType]:
    types = {t.name: t for t in resource_types()}
    for resource_type in types.values():
        for parent in resource_type.parents:
            assert list(types).index(parent.type) < list(types).index(resource_type.name), (
                f"{resource_type.name}: parent {parent.type} must come first"
            )
    return types


def key_width(type_name: str) -> int:
    """How many parts the natural key of a type has (its parents' keys, then its own)."""
    resource_type = types_by_name()[type_name]
    return sum(key_width(p.type) for p in resource_type.parents) + len(resource_type.key_columns)


def parent_keys(resource_type: ResourceType, key: tuple[str, ...]) -> list[tuple[ParentRef, tuple[str, ...]]]:
    """Split a key into the parents' keys, in the order of `parents`."""
    parts, start = [], 0
    for parent in resource_type.parents:
        width = key_width(parent.type)
        parts.append((parent, key[start : start + width]))
        start += width
    return parts


def own_key(resource_type: ResourceType, key: tuple[str, ...]) -> dict[str, str]:
    """The own key columns of a key, by column name."""
    own = key[len(key) - len(resource_type.key_columns):] if resource_type.key_columns else ()
    return dict(zip(resource_type.key_columns, own))


def audit_domain(resource_type: ResourceType, key: tuple[str, ...]) -> str:
    if resource_type.audit_domain:
        return resource_type.audit_domain
    return own_key(resource_type, key).get("domain", "iam")
