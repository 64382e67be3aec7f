"""The kinds of `cockpit/v1`, listed in one place, and the registry that holds them.

Validate, plan, apply, export and the read API ask the registry about kinds; they never import a
kind's module directly. Each kind's config-language facts and semantic rules are its
`Descriptor` here; its resource types, expander, exporter and policy index hang off the same
descriptor in `cockpit.resources.kinds`, which refuses to build unless every kind here has them.
"""

from __future__ import annotations

from functools import cache

from cockpit.config import models, routing_rules, semantics
from cockpit.config.descriptor import Descriptor, Registry, RegistryError, Rules

__all__ = ["Descriptor", "Registry", "RegistryError", "Rules", "build_registry", *(
    "ACCOUNT", "MODEL", "DIRECTORY", "MODEL_ACCESS", "FEATURES", "GUARDRAIL_PRESET", "AGENT",
    "CONNECTION", "MARKETPLACE_LISTING", "BUDGET_PLAN", "RATE_LIMITS",
)]

ACCOUNT = Descriptor(
    "Account",
    models.Account,
    ("name",),
    secret_fields=("sso.settings.*secret*",),
    rules=semantics.account_rules,
)
MODEL = Descriptor(
    "Model",
    models.Model,
    ("name",),
    secret_fields=("litellm.api_key", "deployments.*.litellm.api_key"),
    rules=routing_rules.model_rules,
)
DIRECTORY = Descriptor(
    "Directory",
    models.Directory,
    ("account", "domain"),
    ("Account",),
    mergeable=True,
    rules=semantics.directory_rules,
)
MODEL_ACCESS = Descriptor(
    "ModelAccess",
    models.ModelAccess,
    ("account", "domain"),
    ("Account", "Model", "Directory"),
    mergeable=True,
    rules=semantics.model_access_rules,
)
FEATURES = Descriptor(
    "Features",
    models.Features,
    ("account", "domain"),
    ("Account", "Directory"),
    mergeable=True,
    rules=semantics.features_rules,
)
GUARDRAIL_PRESET = Descriptor(
    "GuardrailPreset",
    models.GuardrailPreset,
    ("account", "code"),
    ("Directory",),
    rules=semantics.guardrail_preset_rules,
)
AGENT = Descriptor(
    "Agent",
    models.Agent,
    ("account", "name"),
    ("Directory", "GuardrailPreset"),
    rules=semantics.agent_rules,
)
CONNECTION = Descriptor(
    "Connection",
    models.Connection,
    ("account", "name"),
    ("Directory",),
    secret_fields=("secret.*",),
    rules=semantics.connection_rules,
)
MARKETPLACE_LISTING = Descriptor(
    "MarketplaceListing",
    models.MarketplaceListing,
    ("account", "entity"),
    ("Agent", "Connection"),
    rules=semantics.marketplace_rules,
)
BUDGET_PLAN = Descriptor(
    "BudgetPlan",
    models.BudgetPlan,
    ("account", "name"),
    ("Directory",),
    rules=semantics.budget_plan_rules,
)
RATE_LIMITS = Descriptor(
    "RateLimits",
    models.RateLimits,
    ("account", "domain"),
    ("Account", "Model", "Directory", "Agent"),
    mergeable=True,
    rules=routing_rules.rate_limits_rules,
)


@cache
def build_registry() -> Registry:
    """The kinds of `cockpit/v1`, in dependency order."""
    return Registry(
        [
            ACCOUNT, MODEL, DIRECTORY, MODEL_ACCESS, FEATURES, GUARDRAIL_PRESET, AGENT,
            CONNECTION, MARKETPLACE_LISTING, BUDGET_PLAN, RATE_LIMITS,
        ]
    )
