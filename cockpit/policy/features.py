"""Effective features, per domain.

The most specific level of user → teams → orgs → account with an entitlement for the feature
wins. Within a level (a user in two teams) disabled wins, as deny does for models; when all
agree on enabled, the config is that of the first scope in sorted order (configs are not
merged). The account's `feature_pack` is the account-level default (a pack feature with no
entitlement anywhere is enabled, with the pack's `config[feature]` when that is a mapping) and
the ceiling (a feature outside the pack is never enabled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from cockpit.policy.graph import ACCOUNT, AccountGraph
from cockpit.policy.provenance import Source, explain, origin_of, source_of


@dataclass(frozen=True)
class FeatureDecision:
    account: str
    domain: str
    user: str
    feature: str
    enabled: bool
    config: Mapping[str, Any] = field(default_factory=dict)
    level: str | None = None
    """The chain level that decided (`user`, `team`, `org`, `account`), `feature_pack` for the
    pack's default or ceiling."""
    sources: tuple[Source, ...] = ()
    why: str = ""


def feature_access(graph: AccountGraph, domain: str, user: str, feature: str) -> FeatureDecision:
    """Whether `feature` is enabled for `user` in `domain`, with its config and why."""
    pack, pack_config = graph.feature_pack()
    account = graph.account
    pack_source = Source(
        "account",
        account.key if account else (graph.name,),
        str(ACCOUNT),
        "feature_pack",
        origin_of(account),
    )
    if feature not in pack:
        return FeatureDecision(
            graph.name, domain, user, feature, False, {}, "feature_pack", (pack_source,),
            f"disabled: {feature} is not in the account's feature pack (the ceiling)",
        )
    entitlements = graph.entitlements[domain]
    for level, scopes in graph.directory(domain).chain(user):
        found = [(s, entitlements[s][feature]) for s in scopes if feature in entitlements.get(s, {})]
        if not found:
            continue
        disabled = [(s, e) for s, e in found if not e.fields.get("enabled", True)]
        decisive = disabled or found
        sources = tuple(
            source_of(e, str(s), "enabled" if e.fields.get("enabled", True) else "disabled")
            for s, e in decisive
        )
        enabled = not disabled
        config = dict(decisive[0][1].fields.get("config") or {}) if enabled else {}
        verdict = "enabled" if enabled else "disabled"
        why = f"{verdict} by {explain(sources)} (the most specific level with an entitlement)"
        if disabled and len(found) > len(disabled):
            why += "; disabled wins within a level"
        return FeatureDecision(graph.name, domain, user, feature, enabled, config, level, sources, why)
    default = pack_config.get(feature)
    return FeatureDecision(
        graph.name, domain, user, feature, True,
        dict(default) if isinstance(default, Mapping) else {},
        "feature_pack", (pack_source,),
        f"enabled by the account's feature pack (no entitlement for {feature} on the chain)",
    )


def effective_features(graph: AccountGraph, domain: str, user: str) -> tuple[FeatureDecision, ...]:
    """A decision for every feature of the pack, and any other feature entitled on the chain."""
    names = set(graph.feature_pack()[0])
    entitlements = graph.entitlements[domain]
    for _, scopes in graph.directory(domain).chain(user):
        for scope in scopes:
            names.update(entitlements.get(scope, ()))
    return tuple(feature_access(graph, domain, user, name) for name in sorted(names))
