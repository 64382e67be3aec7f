"""Routing and rate-limit rules: a model's deployments and fallbacks, and `RateLimits` entries.

A model has its one deployment (`litellm:`) or several (`deployments:`), never both and never
none; deployment names are unique within the model. Fallbacks name catalog models, never the
model itself, and never lead back to it through other models (a cycle would bounce a failing
call between models). A rate limit resolves its scope in its domain's directory (agents are
copilot's), names a catalog model if any, says `rpm`, `tpm` or both, and counts `per_user` only
on scopes that hold several users; each (scope, per_user, model) is limited once per domain.
"""

from __future__ import annotations

from cockpit.config.references import Resolver, report_duplicate
from cockpit.config.source import NodeRef
from cockpit.config.tenant import Declared, Tenant

PER_USER_SCOPES = ("account", "org", "team")


def model_rules(catalog: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    for declared in catalog:
        _deployments(declared, resolver)
        _fallbacks(declared, resolver)
    _fallback_cycles(catalog, resolver)


def _deployments(declared: Declared, resolver: Resolver) -> None:
    model = declared.model
    if model.litellm is not None and "deployments" in declared.source.data:
        resolver.diagnostics.error(
            declared.at("deployments", key=True),
            f"model '{model.name}' gives both `litellm` and `deployments`; `litellm` is the "
            "shorthand for one deployment: keep one of them",
        )
    elif model.litellm is None and not model.deployments:
        resolver.diagnostics.error(
            declared.at("deployments", key=True) if "deployments" in declared.source.data else declared.at("name"),
            f"model '{model.name}' has no deployment: give `litellm:` (one upstream) or "
            "`deployments:` (a list of {name, litellm, weight})",
        )
    seen: dict[str, NodeRef] = {}
    for i, deployment in enumerate(model.deployments):
        if deployment.name in seen:
            report_duplicate(resolver.diagnostics, declared, ("deployments", i, "name"), f"deployment '{deployment.name}'", seen[deployment.name])
        seen.setdefault(deployment.name, declared.ref("deployments", i))


def _fallbacks(declared: Declared, resolver: Resolver) -> None:
    model = declared.model
    seen: dict[str, NodeRef] = {}
    for i, name in enumerate(model.fallbacks):
        path = ("fallbacks", i)
        if name == model.name:
            resolver.diagnostics.error(
                declared.at(*path),
                f"model '{model.name}' names itself as a fallback; fallbacks are other models, "
                "tried when every deployment of this one fails",
            )
        elif name in seen:
            report_duplicate(resolver.diagnostics, declared, path, f"fallback '{name}'", seen[name])
        else:
            resolver.model(declared, path, name)
        seen.setdefault(name, declared.ref(*path))


def _fallback_cycles(catalog: list[Declared], resolver: Resolver) -> None:
    """Report each cycle once, at the fallback entry that closes it (self-references are
    reported by `_fallbacks`)."""
    by_name = {d.model.name: d for d in catalog}
    done: set[str] = set()
    reported: set[frozenset[str]] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in done:
            return
        declared = by_name[name]
        trail.append(name)
        for i, target in enumerate(declared.model.fallbacks):
            if target == name or target not in by_name:
                continue
            if target in trail:
                cycle = trail[trail.index(target):] + [target]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    resolver.diagnostics.error(
                        declared.at("fallbacks", i),
                        f"fallback cycle {' → '.join(cycle)}: a failing call would go round "
                        "these models; remove one of the fallbacks",
                    )
                continue
            visit(target, trail)
        trail.pop()
        done.add(name)

    for name in by_name:
        visit(name, [])


def rate_limits_rules(documents: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    seen: dict[tuple[object, ...], NodeRef] = {}
    for declared in documents:
        _rate_limits(declared, resolver, seen)


def _rate_limits(declared: Declared, resolver: Resolver, seen: dict) -> None:
    document = declared.model
    diagnostics = resolver.diagnostics
    for i, limit in enumerate(document.limits):
        path = ("limits", i)
        if limit.rpm is None and limit.tpm is None:
            diagnostics.error(declared.at(*path), "a rate limit needs rpm (requests per minute), tpm (tokens per minute) or both")
        if limit.model is not None:
            resolver.model(declared, (*path, "model"), limit.model)
        if limit.scope.startswith("agent:") and document.domain == "console":
            diagnostics.error(
                declared.at(*path, "scope"),
                "agents are copilot resources; limit an agent in a RateLimits document of domain copilot",
            )
            continue
        scope = resolver.scope(declared, (*path, "scope"), limit.scope, document.domain)
        if scope is None:
            continue
        if limit.per_user and scope.type not in PER_USER_SCOPES:
            diagnostics.error(
                declared.at(*path, "per_user"),
                f"per_user counts each user of a scope separately, so it applies to account, org "
                f"and team scopes; {scope} is counted as one already: remove per_user",
            )
        key = (document.account, document.domain, str(scope), limit.per_user, limit.model)
        if key in seen:
            what = f"rate limit for {scope}{' per user' if limit.per_user else ''}{' on ' + limit.model if limit.model else ''}"
            report_duplicate(diagnostics, declared, path, what, seen[key])
        else:
            seen[key] = declared.ref(*path)
