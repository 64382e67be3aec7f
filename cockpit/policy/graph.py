"""The policy index of one account, built in one pass over a State and then only read.

Every effective answer walks a user's scope chain (user → teams → orgs → account) and looks up
what is attached at each scope. This index holds both halves, so a lookup costs the length of
the chain, never the size of the state: membership expanded from the directory (a user's teams
are those they are a member of; their orgs are the orgs of those teams plus the orgs they
administer) and every grant, entitlement, assignment and allocation keyed by scope.

The same index serves desired and actual states: both are plain `State`s.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from cockpit.memory import paused_gc
from cockpit.config.scopes import Scope
from cockpit.resources.state import Resource, State

DOMAINS = ("console", "copilot")
ACCOUNT = Scope("account", "")
POOL = Scope("pool", "")

Level = tuple[str, tuple[Scope, ...]]
"""One level of a scope chain: its name (`user`, `team`, `org`, `account`, `agent`) and scopes."""


@dataclass
class Directory:
    """One domain's directory of an account: people, orgs, teams and who belongs where."""

    domain: str
    users: dict[str, Resource] = field(default_factory=dict)
    """E-mail → user."""
    orgs: dict[str, Resource] = field(default_factory=dict)
    teams: dict[str, Resource] = field(default_factory=dict)
    """`org/team` → team."""
    members: dict[str, dict[str, Resource]] = field(default_factory=lambda: defaultdict(dict))
    """`org/team` → e-mail → membership."""
    org_admins: dict[str, dict[str, Resource]] = field(default_factory=lambda: defaultdict(dict))
    """Org → e-mail → org-admin record."""
    user_teams: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """E-mail → the teams (`org/team`) they are a member of, sorted."""
    user_orgs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """E-mail → orgs of their teams plus orgs they administer, sorted."""
    org_users: dict[str, frozenset[str]] = field(default_factory=dict)
    """Org → its members through teams, and its admins."""

    def _expand(self) -> None:
        teams: dict[str, list[str]] = defaultdict(list)
        for team, members in self.members.items():
            for email in members:
                teams[email].append(team)
        orgs: dict[str, set[str]] = defaultdict(set)
        for email, of_user in teams.items():
            orgs[email].update(t.partition("/")[0] for t in of_user)
        for org, admins in self.org_admins.items():
            for email in admins:
                orgs[email].add(org)
        self.user_teams = {email: tuple(sorted(t)) for email, t in teams.items()}
        self.user_orgs = {email: tuple(sorted(o)) for email, o in orgs.items()}
        by_org: dict[str, set[str]] = defaultdict(set)
        for email, of_user in orgs.items():
            for org in of_user:
                by_org[org].add(email)
        self.org_users = {org: frozenset(emails) for org, emails in by_org.items()}

    def teams_of(self, email: str) -> tuple[str, ...]:
        return self.user_teams.get(email, ())

    def orgs_of(self, email: str) -> tuple[str, ...]:
        return self.user_orgs.get(email, ())

    def chain(self, email: str) -> tuple[Level, ...]:
        """The user's scope chain, most specific level first; the account always closes it."""
        return (
            ("user", (Scope("user", email),)),
            ("team", tuple(Scope("team", t) for t in self.teams_of(email))),
            ("org", tuple(Scope("org", o) for o in self.orgs_of(email))),
            ("account", (ACCOUNT,)),
        )

    def member_scopes(self, email: str) -> frozenset[Scope]:
        """Every scope a grant can name to reach this user: user, their teams, their orgs."""
        return frozenset(
            (
                Scope("user", email),
                *(Scope("team", t) for t in self.teams_of(email)),
                *(Scope("org", o) for o in self.orgs_of(email)),
            )
        )

    def users_of(self, scope: Scope) -> frozenset[str]:
        """The users a scope reaches (the whole directory for `account` and `pool`)."""
        if scope.type == "user":
            return frozenset((scope.key,))
        if scope.type == "team":
            return frozenset(self.members.get(scope.key, ()))
        if scope.type == "org":
            return self.org_users.get(scope.key, frozenset())
        if scope.type in ("account", "pool"):
            return frozenset(self.users)
        return frozenset()


def _scoped() -> dict[Scope, dict[str, Resource]]:
    return defaultdict(dict)


@dataclass
class AccountGraph:
    """Everything the policy rules read about one account, indexed by scope and by name."""

    name: str
    account: Resource | None = None
    catalog: dict[str, Resource] = field(default_factory=dict)
    """The global model catalog (shared by every account of the state)."""
    directories: dict[str, Directory] = field(default_factory=lambda: {d: Directory(d) for d in DOMAINS})
    model_grants: dict[str, dict[Scope, dict[str, Resource]]] = field(default_factory=lambda: {d: _scoped() for d in DOMAINS})
    """Domain → scope → model → grant. Look up with a `Scope`; the keys are plain tuples."""
    entitlements: dict[str, dict[Scope, dict[str, Resource]]] = field(default_factory=lambda: {d: _scoped() for d in DOMAINS})
    """Domain → scope → feature → entitlement. Look up with a `Scope`; keys are plain tuples."""
    presets: dict[str, Resource] = field(default_factory=dict)
    assignments: dict[Scope, dict[str, Resource]] = field(default_factory=_scoped)
    """Scope → preset code → guardrail assignment."""
    agent_guardrails: dict[str, dict[str, Resource]] = field(default_factory=lambda: defaultdict(dict))
    """Agent → preset code → agent guardrail."""
    agents: dict[str, Resource] = field(default_factory=dict)
    agent_grants: dict[Scope, dict[str, Resource]] = field(default_factory=_scoped)
    """Scope → agent → grant."""
    connections: dict[str, Resource] = field(default_factory=dict)
    connection_grants: dict[Scope, dict[str, Resource]] = field(default_factory=_scoped)
    """Scope → connection → grant."""
    listings: dict[str, Resource] = field(default_factory=dict)
    """`entity_type:entity_name` → listing."""
    listing_grants: dict[Scope, dict[str, Resource]] = field(default_factory=_scoped)
    """Scope → listing → grant."""
    granted_listings: set[str] = field(default_factory=set)
    """Listings that have at least one grant (the others are visible to the whole account)."""
    open_listings: frozenset[str] = frozenset()
    """Published listings without grants: visible to everyone of the account."""
    budget_plans: dict[str, Resource] = field(default_factory=dict)
    allocations: dict[str, dict[Scope, Resource]] = field(default_factory=lambda: defaultdict(dict))
    """Plan → scope → allocation."""
    overrides: dict[str, dict[Scope, Resource]] = field(default_factory=lambda: defaultdict(dict))
    """Plan → scope → override."""

    def directory(self, domain: str) -> Directory:
        return self.directories[domain]

    @property
    def fields(self) -> Mapping[str, Any]:
        return self.account.fields if self.account is not None else {}

    def model_policy(self, domain: str) -> tuple[frozenset[str], frozenset[str]]:
        """(allow, deny) of the account's model_policy for a domain; empty allow = no ceiling."""
        policy = (self.fields.get("model_policy") or {}).get(domain) or {}
        return frozenset(policy.get("allow") or ()), frozenset(policy.get("deny") or ())

    def feature_pack(self) -> tuple[frozenset[str], Mapping[str, Any]]:
        """(features, config) of the account's feature pack."""
        pack = self.fields.get("feature_pack") or {}
        return frozenset(pack.get("features") or ()), pack.get("config") or {}

    def active_plan(self) -> str | None:
        """The active budget plan (the first by name, should a broken state hold several)."""
        active = sorted(name for name, plan in self.budget_plans.items() if plan.fields.get("active"))
        return active[0] if active else None


def _scope(resource: Resource, at: int) -> Scope:
    return Scope(resource.key[at], resource.key[at + 1])




def _directory_handlers(domain: str) -> dict[str, Callable[[AccountGraph, Resource], None]]:
    def user(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].users[r.key[0]] = r

    def org(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].orgs[r.key[0]] = r

    def team(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].teams[f"{r.key[0]}/{r.key[1]}"] = r

    def member(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].members[f"{r.key[0]}/{r.key[1]}"][r.key[2]] = r

    def org_admin(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].org_admins[r.key[0]][r.key[1]] = r

    return {
        f"{domain}_user": user,
        f"{domain}_org": org,
        f"{domain}_team": team,
        f"{domain}_team_member": member,
        f"{domain}_org_admin": org_admin,
    }


def _account(g: AccountGraph, r: Resource) -> None:
    g.account = r


def _model_grant(g: AccountGraph, r: Resource) -> None:
    # The scope is kept as the plain (type, key) slice of the key: equal to, and hashing like,
    # the `Scope` that looks it up, without building one per grant (most of a big state).
    key = r.key
    by_scope = g.model_grants.get(key[0])
    if by_scope is not None:
        by_scope[key[2:4]][key[1]] = r


def _entitlement(g: AccountGraph, r: Resource) -> None:
    domain, feature = r.key[0], r.key[1]
    if domain in g.entitlements:
        g.entitlements[domain][r.key[2:4]][feature] = r


def _preset(g: AccountGraph, r: Resource) -> None:
    g.presets[r.key[0]] = r


def _assignment(g: AccountGraph, r: Resource) -> None:
    g.assignments[_scope(r, 1)][r.key[0]] = r


def _agent_guardrail(g: AccountGraph, r: Resource) -> None:
    g.agent_guardrails[r.key[0]][r.key[1]] = r


def _agent(g: AccountGraph, r: Resource) -> None:
    g.agents[r.key[0]] = r


def _agent_grant(g: AccountGraph, r: Resource) -> None:
    g.agent_grants[_scope(r, 1)][r.key[0]] = r


def _connection(g: AccountGraph, r: Resource) -> None:
    g.connections[r.key[0]] = r


def _connection_grant(g: AccountGraph, r: Resource) -> None:
    g.connection_grants[_scope(r, 1)][r.key[0]] = r


def _listing(g: AccountGraph, r: Resource) -> None:
    g.listings[f"{r.key[0]}:{r.key[1]}"] = r


def _listing_grant(g: AccountGraph, r: Resource) -> None:
    listing = f"{r.key[0]}:{r.key[1]}"
    g.listing_grants[_scope(r, 2)][listing] = r
    g.granted_listings.add(listing)


def _budget_plan(g: AccountGraph, r: Resource) -> None:
    g.budget_plans[r.key[0]] = r


def _allocation(g: AccountGraph, r: Resource) -> None:
    g.allocations[r.key[0]][_scope(r, 1)] = r


def _override(g: AccountGraph, r: Resource) -> None:
    g.overrides[r.key[0]][_scope(r, 1)] = r


HANDLERS: Mapping[str, Callable[[AccountGraph, Resource], None]] = {
    "account": _account,
    **_directory_handlers("console"),
    **_directory_handlers("copilot"),
    "model_grant": _model_grant,
    "feature_entitlement": _entitlement,
    "guardrail_preset": _preset,
    "guardrail_assignment": _assignment,
    "agent": _agent,
    "agent_guardrail": _agent_guardrail,
    "agent_grant": _agent_grant,
    "connection": _connection,
    "connection_grant": _connection_grant,
    "marketplace_listing": _listing,
    "marketplace_grant": _listing_grant,
    "budget_plan": _budget_plan,
    "budget_allocation": _allocation,
    "budget_override": _override,
}
"""What each resource type contributes to the index; types the rules never read are skipped."""


def build_graphs(state: State) -> dict[str, AccountGraph]:
    """One index per account of the state, in a single pass over its resources (the cyclic
    collector paused: see `cockpit.memory`)."""
    with paused_gc():
        return _build(state)


def _build(state: State) -> dict[str, AccountGraph]:
    graphs: dict[str, AccountGraph] = {}
    catalog: dict[str, Resource] = {}
    graph: AccountGraph | None = None
    for resource in state:
        handler = HANDLERS.get(resource.type)
        if handler is None:
            if resource.type == "model":
                catalog[resource.key[0]] = resource
            continue
        if graph is None or graph.name != resource.account:
            if resource.account is None:
                continue
            graph = graphs.get(resource.account)
            if graph is None:
                graph = graphs[resource.account] = AccountGraph(resource.account)
        handler(graph, resource)
    for graph in graphs.values():
        graph.catalog = catalog
        for directory in graph.directories.values():
            directory._expand()
        graph.open_listings = frozenset(
            name for name, listing in graph.listings.items()
            if listing.fields.get("published") is not False and name not in graph.granted_listings
        )
    return graphs


def account_graph(state: State, account: str) -> AccountGraph:
    """The index of one account (an empty one when the state does not hold it)."""
    graph = build_graphs(state).get(account)
    if graph is None:
        graph = AccountGraph(account, catalog={r.key[0]: r for r in state.of_type("model")})
    return graph
