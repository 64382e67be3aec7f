"""The policy index of one account: its directory expanded and every grant, entitlement,
assignment and allocation keyed by scope.

Every effective answer walks a user's scope chain (user → teams → orgs → account) and looks up
what is attached at each scope. This index holds both halves, so a lookup costs the length of
the chain, never the size of the state: membership expanded from the directory (a user's teams
are those they are a member of; their orgs are the orgs of those teams plus the orgs they
administer) and every grant, entitlement, assignment and allocation keyed by scope.

Each kind says what its resources add to the index (`Kind.index`, in `cockpit.resources.kinds`),
so the index lives below the kinds; `cockpit.policy.graph` builds it and the policy rules read it.
The same index serves desired and actual states: both are plain `State`s.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from cockpit.config.scopes import Scope
from cockpit.resources.state import Resource

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
    deployments: dict[str, list[Resource]] = field(default_factory=dict)
    """Model → its deployments, when it lists several (global, shared like the catalog)."""
    rate_limits: dict[str, dict[Scope, list[Resource]]] = field(default_factory=lambda: {d: {} for d in DOMAINS})
    """Domain → scope → the rate limits declared at it (all models, per user, per model)."""
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


IndexHandler = Callable[[AccountGraph, Resource], None]
"""What one resource adds to its account's index."""


def scope_at(resource: Resource, at: int) -> Scope:
    """The scope whose (type, key) starts at position `at` of the resource's key."""
    return Scope(resource.key[at], resource.key[at + 1])
