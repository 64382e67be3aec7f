"""The kinds of `cockpit/v1`, one module each, gathered into the registry the engines iterate.

A module declares its kind's `Kind`: the config language's descriptor (model, keys, secret
fields, semantic rules, from `cockpit.config.registry`), its resource types, its expander, its
exporter and what its resources add to the policy index. A new kind is one more module here and
one more line in `build_kinds()`, next to its descriptor and model in `cockpit.config`.
"""

from __future__ import annotations

from functools import cache

from cockpit.config.registry import build_registry
from cockpit.resources.kind import Kind, KindRegistry
from cockpit.resources.kinds import (
    account,
    agent,
    budget_plan,
    connection,
    directory,
    features,
    guardrail_preset,
    marketplace_listing,
    model,
    model_access,
    rate_limits,
)

__all__ = ["KINDS", "Kind", "KindRegistry", "kind_registry"]

KINDS: tuple[Kind, ...] = (
    account.KIND,
    model.KIND,
    directory.KIND,
    model_access.KIND,
    features.KIND,
    guardrail_preset.KIND,
    agent.KIND,
    connection.KIND,
    marketplace_listing.KIND,
    budget_plan.KIND,
    rate_limits.KIND,
)


@cache
def kind_registry() -> KindRegistry:
    """Every kind with its pieces, checked against the config language's registry."""
    return KindRegistry(list(KINDS), build_registry())
