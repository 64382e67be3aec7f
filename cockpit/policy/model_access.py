"""Effective model access, per domain.

The chain is user → the user's teams → their orgs → account, found through the domain's
directory. The most specific level with a grant for the model decides; within a level deny
wins; no grant anywhere is deny. The account's `model_policy` for the domain is a ceiling no
grant can exceed: a non-empty `allow` admits only those models, `deny` always applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.policy.graph import ACCOUNT, AccountGraph
from cockpit.policy.provenance import Source, explain, origin_of, source_of
from cockpit.config.scopes import Scope
from cockpit.resources.state import Resource

_NONE: frozenset[str] = frozenset()
LEVEL_NAMES = {"user": "user", "team": "teams", "org": "orgs", "account": "account"}


@dataclass(frozen=True)
class ModelDecision:
    account: str
    domain: str
    user: str
    model: str
    allowed: bool
    level: str | None
    """The chain level whose grants decided (`user`, `team`, `org`, `account`); None: no grant."""
    sources: tuple[Source, ...]
    """The grants of the deciding level, then the model_policy entry when the ceiling cut in."""
    why: str
    """For people: which grant or policy decided, and where it is declared."""


def _denies(grant: Resource) -> bool:
    return grant.fields.get("access") == "deny"


def model_access(graph: AccountGraph, domain: str, user: str, model: str) -> ModelDecision:
    """Whether `user` may use `model` in `domain`, and which grant or policy decided it."""
    grants = graph.model_grants[domain]
    level: str | None = None
    found: list[tuple[Scope, Resource]] = []
    for level_name, scopes in graph.directory(domain).chain(user):
        found = [(s, grants[s][model]) for s in scopes if model in grants.get(s, {})]
        if found:
            level = level_name
            break
    denied = [pair for pair in found if _denies(pair[1])]
    allowed = bool(found) and not denied
    sources = [source_of(g, str(s), "deny" if _denies(g) else "allow") for s, g in found]
    if not found:
        why = f"denied: no grant for {model} at user, teams, orgs or account (default deny)"
    elif denied:
        decisive = [source_of(g, str(s), "deny") for s, g in denied]
        overruled = len(found) - len(denied)
        why = f"denied by {explain(decisive)}" + (
            f"; deny wins over {overruled} allow at the same level" if overruled else ""
        )
    else:
        why = f"allowed by {explain(sources)}"
    if level is not None:
        why += f" (the most specific level with a grant for {model}: {LEVEL_NAMES[level]})"

    ceiling = _ceiling(graph, domain, model)
    if ceiling is not None:
        sources.append(ceiling)
        where = f", {ceiling.origin}" if ceiling.origin else ""
        why = f"denied by the account's {domain} model_policy ({ceiling.detail}{where}); without it: {why}"
        allowed = False
    return ModelDecision(graph.name, domain, user, model, allowed, level, tuple(sources), why)


def _ceiling(graph: AccountGraph, domain: str, model: str) -> Source | None:
    """The model_policy entry that forbids `model`, or None when the policy lets it through."""
    allow, deny = graph.model_policy(domain)
    if model in deny:
        detail = f"model_policy.{domain}.deny lists {model}"
    elif allow and model not in allow:
        detail = f"model_policy.{domain}.allow omits {model}"
    else:
        return None
    key = graph.account.key if graph.account else (graph.name,)
    return Source("account", key, str(ACCOUNT), detail, origin_of(graph.account))


def effective_models(graph: AccountGraph, domain: str, user: str) -> tuple[ModelDecision, ...]:
    """A decision for every model of the catalog, and any other model granted on the chain."""
    names = set(graph.catalog)
    grants = graph.model_grants[domain]
    for _, scopes in graph.directory(domain).chain(user):
        for scope in scopes:
            names.update(grants.get(scope, ()))
    return tuple(model_access(graph, domain, user, name) for name in sorted(names))


def allowed_models(graph: AccountGraph, domain: str, user: str) -> frozenset[str]:
    """The models `user` may use in `domain`: the fast path, without explanations."""
    return ModelResolver(graph, domain).allowed(user)


class ModelResolver:
    """Allowed models for many users of one domain. Users who share teams and orgs share the
    work above the user level; most users differ only by their own grants, if any."""

    def __init__(self, graph: AccountGraph, domain: str) -> None:
        self.grants = graph.model_grants[domain]
        self.directory = graph.directory(domain)
        self.allow, self.deny = graph.model_policy(domain)
        self._by_scope: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {}
        self._shared: dict[tuple[tuple[str, ...], tuple[str, ...]], frozenset[str]] = {}

    def allowed(self, user: str) -> frozenset[str]:
        teams, orgs = self.directory.teams_of(user), self.directory.orgs_of(user)
        allowed = self._shared.get((teams, orgs))
        if allowed is None:
            allowed = self._shared[(teams, orgs)] = self._resolve(
                ([("team", t) for t in teams], [("org", o) for o in orgs], [ACCOUNT])
            )
        allow, deny = self._access(("user", user))
        if allow or deny:
            allowed = allow | (allowed - allow - deny)
        if self.deny:
            allowed -= self.deny
        if self.allow:
            allowed &= self.allow
        return allowed

    def _access(self, scope: tuple[str, str]) -> tuple[frozenset[str], frozenset[str]]:
        """(allowed, denied) models of the grants at exactly one scope."""
        access = self._by_scope.get(scope)
        if access is None:
            grants = self.grants.get(scope)
            if not grants:
                access = (_NONE, _NONE)
            else:
                deny = [m for m, g in grants.items() if g.fields.get("access") == "deny"]
                access = (frozenset(grants).difference(deny), frozenset(deny)) if deny else (frozenset(grants), _NONE)
            self._by_scope[scope] = access
        return access

    def _resolve(self, levels: tuple[list[tuple[str, str]], ...]) -> frozenset[str]:
        """Allowed models over levels, most specific first, deny winning within a level."""
        allowed: set[str] = set()
        decided: set[str] = set()
        for scopes in levels:
            allow: set[str] = set()
            deny: set[str] = set()
            for scope in scopes:
                a, d = self._access(scope)
                allow |= a
                deny |= d
            allow -= decided
            deny -= decided
            allowed |= allow - deny
            decided |= allow | deny
        return frozenset(allowed)
