"""The config language: one pydantic model per kind of `cockpit/v1`.

These models are the single source of the JSON Schemas under `schemas/` (`cockpit schema
export`) and of every field's default: the exporter omits a field that holds the default stated
here. The defaults are those of the system Cockpit replaces (an account is active, a grant
allows, a pattern detects, a listing is published at version 1.0.0), so configs migrated from it
mean the same. Every model forbids unknown fields, so a typo is an error, not a silent no-op.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cockpit.config.types import (
    AssignScope,
    BudgetScope,
    Credits,
    Email,
    EmailDomain,
    EntityRef,
    GrantScope,
    MemberScope,
    ModelName,
    Name,
    SecretRef,
)

API_VERSION = "cockpit/v1"
RATE_MAX = 1_000_000_000_000
"""The largest rpm or tpm accepted: far beyond any provider's, small enough for a BIGINT."""
Domain = Literal["copilot", "console"]
BaseRole = Literal[
    "account_admin",
    "console_org_admin",
    "console_team_admin",
    "copilot_org_admin",
    "copilot_team_admin",
    "end_user",
]
"""The six standard Zitadel project roles (before the account's `role_prefix`)."""


class Strict(BaseModel):
    """Base of every config object: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class Document(Strict):
    """Fields every document has."""

    api_version: Literal["cockpit/v1"] = Field(alias="apiVersion")
    protect: bool = Field(
        default=False, description="When true, a plan may never delete this resource."
    )


# --- Account -------------------------------------------------------------------------------


class Admin(Strict):
    email: Email
    role: BaseRole = "account_admin"


class Sso(Strict):
    provider: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    enabled: bool = False
    settings: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        description="Provider settings. Keys containing 'secret' take only ${env:…}/${file:…}.",
    )


class AccountAllocation(Strict):
    monthly_credits: Credits = 0
    overflow_limit: Credits = 0
    credit_factor: float = Field(default=1, gt=0, description="credits = raw cost × this.")


class FeaturePack(Strict):
    features: list[Name] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)


class DomainModelPolicy(Strict):
    allow: list[ModelName] = Field(
        default_factory=list, description="Ceiling: empty means no ceiling."
    )
    deny: list[ModelName] = Field(default_factory=list, description="Always denied.")


class ModelPolicy(Strict):
    console: DomainModelPolicy = Field(default_factory=DomainModelPolicy)
    copilot: DomainModelPolicy = Field(default_factory=DomainModelPolicy)


class ZitadelSettings(Strict):
    project_id: str | None = Field(default=None, pattern=r"^[0-9A-Za-z_-]{1,64}$")
    organization_id: str | None = Field(default=None, pattern=r"^[0-9A-Za-z_-]{1,64}$")
    issuer: str | None = Field(default=None, pattern=r"^https?://\S+$")
    role_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]{0,64}$")
    role_mappings: dict[BaseRole, str] = Field(
        default_factory=dict,
        description="Standard role → project role key; keys must start with role_prefix.",
    )
    users: dict[str, str] = Field(
        default_factory=dict, description="E-mail → Zitadel user id, when search cannot find one."
    )


class Account(Document):
    kind: Literal["Account"]
    name: Name
    alias: str | None = None
    description: str | None = None
    email_domain: EmailDomain | None = None
    status: Literal["active", "suspended"] = "active"
    admins: list[Admin] = Field(default_factory=list)
    sso: Sso | None = None
    allocation: AccountAllocation = Field(default_factory=AccountAllocation)
    feature_pack: FeaturePack = Field(default_factory=FeaturePack)
    model_policy: ModelPolicy = Field(default_factory=ModelPolicy)
    zitadel: ZitadelSettings | None = None


# --- Model catalog -------------------------------------------------------------------------


class LitellmParams(Strict):
    model: str = Field(min_length=1, description="Upstream model, e.g. openai/gpt-4o.")
    api_base: str | None = Field(default=None, pattern=r"^https?://\S+$")
    api_key: SecretRef | None = None
    api_version: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    extra_body: dict[str, Any] = Field(default_factory=dict)


class Pricing(Strict):
    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    cached_input_per_million: float | None = Field(
        default=None, ge=0,
        description="Price of input read from the provider's prompt cache; absent: the input price.",
    )


class Deployment(Strict):
    """One upstream a model's calls can go to; the proxy chooses among them by weight."""

    name: Name
    litellm: LitellmParams
    weight: int = Field(default=1, ge=1, le=1_000_000, description="Share of the calls, relative to the others.")
    rpm: int | None = Field(default=None, gt=0, le=RATE_MAX, description="Requests per minute this deployment takes.")
    tpm: int | None = Field(default=None, gt=0, le=RATE_MAX, description="Tokens per minute this deployment takes.")


class Model(Document):
    # One of the two ways to give its deployments; the semantic pass says which is wrong.
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["litellm"]}, {"required": ["deployments"]}]})

    kind: Literal["Model"]
    name: ModelName
    description: str | None = None
    litellm: LitellmParams | None = Field(
        default=None, description="The one deployment (shorthand); give this or `deployments`."
    )
    deployments: list[Deployment] = Field(
        default_factory=list, description="Several deployments, chosen by weight; or `litellm`."
    )
    fallbacks: list[ModelName] = Field(
        default_factory=list,
        description="Catalog models tried in order when every deployment fails.",
    )
    timeout_seconds: float | None = Field(
        default=None, gt=0, le=3600, description="Bound of each upstream attempt."
    )
    pricing: Pricing


# --- Directory -----------------------------------------------------------------------------


class DirectoryUser(Strict):
    email: Email
    display_name: str | None = None
    identity_user_id: str | None = None
    status: Literal["active", "suspended"] = "active"


class Member(Strict):
    user: Email
    role: Literal["member", "admin"] = "member"


class Team(Strict):
    name: Name
    description: str | None = None
    members: list[Member] = Field(default_factory=list)


class Org(Strict):
    name: Name
    description: str | None = None
    admins: list[Email] = Field(default_factory=list, description="Org administrators.")
    teams: list[Team] = Field(default_factory=list)


class Directory(Document):
    kind: Literal["Directory"]
    account: Name
    domain: Domain
    users: list[DirectoryUser] = Field(default_factory=list)
    orgs: list[Org] = Field(default_factory=list)


# --- Grants and entitlements ---------------------------------------------------------------


class ModelGrant(Strict):
    model: ModelName
    scope: GrantScope
    access: Literal["allow", "deny"] = "allow"


class ModelAccess(Document):
    kind: Literal["ModelAccess"]
    account: Name
    domain: Domain
    grants: list[ModelGrant] = Field(default_factory=list)


class Entitlement(Strict):
    feature: Name
    scope: GrantScope
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)


class Features(Document):
    kind: Literal["Features"]
    account: Name
    domain: Domain
    entitlements: list[Entitlement] = Field(default_factory=list)


# --- Guardrails, agents, connections, marketplace ------------------------------------------


class Pattern(Strict):
    name: Name
    regex: str = Field(min_length=1)
    type: Literal["detect", "block", "allow"] = "detect"
    enabled: bool = True
    action: str | None = None


class GuardrailPreset(Document):
    kind: Literal["GuardrailPreset"]
    account: Name
    code: Name
    name: str = Field(min_length=1)
    domain: Domain = "copilot"
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    patterns: list[Pattern] = Field(default_factory=list)
    assign: list[AssignScope] = Field(default_factory=list)


class Agent(Document):
    kind: Literal["Agent"]
    account: Name
    name: Name
    description: str | None = None
    definition: dict[str, Any] = Field(default_factory=dict)
    guardrails: list[Name] = Field(min_length=1, description="Preset codes; at least one.")
    grants: list[MemberScope] = Field(default_factory=list)


class ConnectionGrant(Strict):
    scope: MemberScope
    can_manage: bool = False


class Connection(Document):
    kind: Literal["Connection"]
    account: Name
    name: Name
    type: Literal["openapi", "mcp", "composio"]
    description: str | None = None
    credential_visibility: Literal["use_only", "self_managed"] = "use_only"
    allow_user_self_manage: bool = False
    config: dict[str, Any] = Field(default_factory=dict)
    secret: dict[str, SecretRef] = Field(default_factory=dict)
    grants: list[ConnectionGrant] = Field(default_factory=list)


class MarketplaceListing(Document):
    kind: Literal["MarketplaceListing"]
    account: Name
    entity: EntityRef
    title: str = Field(min_length=1)
    description: str | None = None
    published: bool = True
    featured: bool = False
    verified: bool = False
    pricing_model: str = "free"
    version: str = "1.0.0"
    author: str | None = None
    grants: list[MemberScope] = Field(
        default_factory=list, description="None means visible to the whole account."
    )


# --- Rate limits ---------------------------------------------------------------------------


class RateLimit(Strict):
    scope: AssignScope
    per_user: bool = Field(
        default=False,
        description="Each user of the scope separately (account, org and team scopes only).",
    )
    model: ModelName | None = Field(default=None, description="Only calls to this model.")
    rpm: int | None = Field(default=None, gt=0, le=RATE_MAX, description="Requests per minute.")
    tpm: int | None = Field(default=None, gt=0, le=RATE_MAX, description="Tokens per minute.")


class RateLimits(Document):
    kind: Literal["RateLimits"]
    account: Name
    domain: Domain
    limits: list[RateLimit] = Field(default_factory=list)


# --- Budgets -------------------------------------------------------------------------------


class Allocation(Strict):
    scope: BudgetScope
    credits: Credits
    overflow_cap: Credits | None = None


class EqualDistribution(Strict):
    scopes: list[BudgetScope] = Field(min_length=1)
    total_credits: Credits
    overflow_cap: Credits | None = None


class Override(Strict):
    scope: BudgetScope
    credits: Credits
    reason: str | None = None


class BudgetPlan(Document):
    kind: Literal["BudgetPlan"]
    account: Name
    name: Name
    cycle: Literal["monthly", "quarterly"] = "monthly"
    active: bool = Field(default=True, description="At most one active plan per account.")
    allow_overflow: bool = False
    allocations: list[Allocation] = Field(default_factory=list)
    distribute_equally: list[EqualDistribution] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
