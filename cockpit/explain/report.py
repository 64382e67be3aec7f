"""What one user gets, and why: the policy answers gathered into one JSON-able report.

Pure: an account's policy index (`cockpit.policy.graph.AccountGraph`) and the credits used per
scope in, a plain dict out. The same report feeds `--json` and the text renderer, so the two
never disagree. Its structure (version 1) is documented in `cockpit.explain`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from cockpit.budgets.usage import Window
from cockpit.policy.allocations import ScopeAllocation, budget_chain
from cockpit.policy.features import effective_features
from cockpit.policy.grants import usable_agents, usable_connections
from cockpit.policy.graph import AccountGraph
from cockpit.policy.guardrails import effective_guardrails
from cockpit.policy.marketplace import discover
from cockpit.policy.model_access import effective_models
from cockpit.policy.provenance import Source
from cockpit.policy.rate_limits import EffectiveRateLimit, effective_rate_limits

REPORT_VERSION = 1


def source_dict(source: Source) -> dict[str, Any]:
    return {"type": source.type, "key": list(source.key), "scope": source.scope, "detail": source.detail, "origin": source.origin}


def _sources(sources: Iterable[Source]) -> list[dict[str, Any]]:
    return [source_dict(s) for s in sources]


def is_known(graph: AccountGraph, user: str, domains: Iterable[str], admins: Iterable[str] = ()) -> bool:
    """In the directory of one of `domains`, or an admin of the account (admins may be in none)."""
    return user in set(admins) or any(user in graph.directory(d).users for d in domains)


def user_report(
    graph: AccountGraph,
    user: str,
    domains: tuple[str, ...],
    source: Mapping[str, Any],
    used: Mapping[str, float] | None,
    window: Window | None,
    admin_role: str | None = None,
) -> dict[str, Any]:
    """Everything `user` gets in the given domains of the account, each with its why."""
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "account": graph.name,
        "user": user,
        "admin_role": admin_role,
        "source": dict(source),
        "domains": list(domains),
        "directory": {d: _membership(graph, d, user) for d in domains},
        "models": {d: [_model(m) for m in effective_models(graph, d, user)] for d in domains},
        "features": {d: [_feature(f) for f in effective_features(graph, d, user)] for d in domains},
        "rate_limits": {d: [_rate_limit(r) for r in effective_rate_limits(graph, d, user, None, None)] for d in domains},
        "guardrails": [
            {"code": g.code, "name": g.name, "domain": g.domain, "levels": list(g.levels), "why": g.why, "sources": _sources(g.sources)}
            for d in domains
            for g in effective_guardrails(graph, user, domain=d)
        ],
    }
    if "copilot" in domains:
        report["agents"] = [_usable(u) for u in usable_agents(graph, user)]
        report["connections"] = [_usable(u) for u in usable_connections(graph, user)]
        report["marketplace"] = [
            {"listing": d.listing, "title": d.title, "mode": d.mode, "via": list(d.matched), "why": d.why, "sources": _sources(d.sources)}
            for d in discover(graph, user)
        ]
        report["budget"] = _budget(graph, user, used, window)
    return report


def _membership(graph: AccountGraph, domain: str, user: str) -> dict[str, Any]:
    directory = graph.directory(domain)
    record = directory.users.get(user)
    return {
        "member": record is not None,
        "display_name": record.fields.get("display_name") if record is not None else None,
        "teams": list(directory.teams_of(user)),
        "orgs": list(directory.orgs_of(user)),
    }


def _model(decision) -> dict[str, Any]:
    return {"model": decision.model, "allowed": decision.allowed, "level": decision.level, "why": decision.why, "sources": _sources(decision.sources)}


def _feature(decision) -> dict[str, Any]:
    return {
        "feature": decision.feature,
        "enabled": decision.enabled,
        "config": dict(decision.config),
        "level": decision.level,
        "why": decision.why,
        "sources": _sources(decision.sources),
    }


def _rate_limit(limit: EffectiveRateLimit) -> dict[str, Any]:
    return {
        "scope": str(limit.scope),
        "per_user": limit.per_user,
        "model": limit.model,
        "rpm": limit.rpm,
        "tpm": limit.tpm,
        "key": limit.key,
        "why": limit.why,
        "sources": _sources([limit.source]),
    }


def _usable(usable) -> dict[str, Any]:
    item = {"name": usable.name, "via": list(usable.via), "why": usable.why, "sources": _sources(usable.sources)}
    if usable.what == "connection":
        item["can_manage"] = usable.can_manage
    return item


def _budget(graph: AccountGraph, user: str, used: Mapping[str, float] | None, window: Window | None) -> dict[str, Any]:
    plan = graph.active_plan()
    if plan is None:
        return {"plan": None, "cycle": None, "window": None, "chain": [], "why": "the account has no active budget plan"}
    record = graph.budget_plans[plan]
    chain = budget_chain(graph, user, plan, used)
    return {
        "plan": plan,
        "cycle": record.fields.get("cycle"),
        "window": window.as_dict() if window else None,
        "chain": [_allocation(a) for a in chain],
        "why": _chain_why(chain),
    }


def _allocation(allocation: ScopeAllocation) -> dict[str, Any]:
    return {
        "scope": allocation.scope,
        "credits": allocation.credits,
        "overflow_cap": allocation.overflow_cap,
        "limit": allocation.limit,
        "base_credits": allocation.base_credits,
        "override": allocation.override,
        "source": allocation.source,
        "reason": allocation.reason,
        "inside": list(allocation.inside),
        "used": allocation.used,
        "remaining": allocation.remaining,
        "why": allocation.why,
        "sources": _sources(allocation.sources),
    }


def _chain_why(chain: tuple[ScopeAllocation, ...]) -> str:
    scopes = [a.scope for a in chain]
    if scopes[:1] == ["pool"]:
        return "no allocation for the user, their teams or orgs: they share the pool, inside the account"
    exhausted = [a.scope for a in chain if a.remaining is not None and a.remaining <= 0]
    text = "every level limits copilot spending: " + " → ".join(scopes)
    if exhausted:
        text += f"; no credit left at {', '.join(exhausted)}: copilot requests are refused"
    return text
