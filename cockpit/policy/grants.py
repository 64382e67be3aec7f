"""Agents and connections a user may use: a grant on the user, one of their teams or one of
their orgs (membership expanded from the copilot directory). No grant, no use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from cockpit.policy.graph import AccountGraph, Directory
from cockpit.policy.provenance import Source, explain, source_of
from cockpit.config.scopes import Scope
from cockpit.resources.state import Resource

ScopedGrants = Mapping[Scope, Mapping[str, Resource]]


@dataclass(frozen=True)
class Usable:
    what: str
    """`agent` or `connection`."""
    name: str
    via: tuple[str, ...]
    """The granted scopes that reach the user, sorted: `user:…`, `team:…`, `org:…`."""
    can_manage: bool
    """Connections: some reaching grant lets the user manage it. Always False for agents."""
    sources: tuple[Source, ...]
    why: str


def reaching_grants(grants: ScopedGrants, scopes: frozenset[Scope]) -> dict[str, list[tuple[Scope, Resource]]]:
    """Name → the grants among `scopes` (a user's member scopes), scopes in sorted order."""
    found: dict[str, list[tuple[Scope, Resource]]] = {}
    for scope in sorted(scopes):
        for name, grant in grants.get(scope, {}).items():
            found.setdefault(name, []).append((scope, grant))
    return found


def usable_agents(graph: AccountGraph, user: str) -> tuple[Usable, ...]:
    scopes = graph.directory("copilot").member_scopes(user)
    return tuple(
        _usable("agent", name, pairs, can_manage=False)
        for name, pairs in sorted(reaching_grants(graph.agent_grants, scopes).items())
        if name in graph.agents
    )


def usable_connections(graph: AccountGraph, user: str) -> tuple[Usable, ...]:
    scopes = graph.directory("copilot").member_scopes(user)
    return tuple(
        _usable("connection", name, pairs, any(g.fields.get("can_manage") for _, g in pairs))
        for name, pairs in sorted(reaching_grants(graph.connection_grants, scopes).items())
        if name in graph.connections
    )


def _usable(what: str, name: str, pairs: list[tuple[Scope, Resource]], can_manage: bool) -> Usable:
    sources = tuple(
        source_of(g, str(s), "can_manage" if g.fields.get("can_manage") else "") for s, g in pairs
    )
    return Usable(what, name, tuple(str(s) for s, _ in pairs), can_manage, sources, f"granted by {explain(sources)}")


class GrantResolver:
    """Names granted to the member scopes of many users (user, teams, orgs). Users who share
    teams and orgs share the work; `base` names reach everyone; `keep` filters names (e.g.
    grants of an agent that no longer exists)."""

    def __init__(
        self,
        directory: Directory,
        grants: ScopedGrants,
        keep: Callable[[str], bool] = lambda name: True,
        base: frozenset[str] = frozenset(),
    ) -> None:
        self.directory, self.grants, self.keep, self.base = directory, grants, keep, base
        self._shared: dict[tuple[tuple[str, ...], tuple[str, ...]], frozenset[str]] = {}

    def names(self, user: str) -> frozenset[str]:
        teams, orgs = self.directory.teams_of(user), self.directory.orgs_of(user)
        shared = self._shared.get((teams, orgs))
        if shared is None:
            found: set[str] = set()
            for team in teams:
                found.update(self.grants.get(("team", team), ()))
            for org in orgs:
                found.update(self.grants.get(("org", org), ()))
            shared = self._shared[(teams, orgs)] = self.base | {n for n in found if self.keep(n)}
        own = self.grants.get(("user", user))
        if own:
            return shared | {n for n in own if self.keep(n)}
        return shared


def agent_resolver(graph: AccountGraph) -> GrantResolver:
    return GrantResolver(graph.directory("copilot"), graph.agent_grants, graph.agents.__contains__)


def connection_resolver(graph: AccountGraph) -> GrantResolver:
    return GrantResolver(graph.directory("copilot"), graph.connection_grants, graph.connections.__contains__)


def usable_agent_names(graph: AccountGraph, user: str) -> frozenset[str]:
    """The agents `user` may use: the fast path, without explanations."""
    return agent_resolver(graph).names(user)


def usable_connection_names(graph: AccountGraph, user: str) -> frozenset[str]:
    """The connections `user` may use: the fast path, without explanations."""
    return connection_resolver(graph).names(user)
