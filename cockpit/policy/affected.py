"""Which users' answers can differ between two indexes of one account.

Access impact only needs to resolve those: a plan that changes one grant resolves the people
that grant reaches, not the whole directory. A user is affected when they are added or removed,
their teams or orgs change, or a grant changes at a scope that reaches them (their own, one of
their teams or orgs, in either state). A change that reaches everyone (the account scope, the
model policy, an agent, connection or listing appearing or going) answers None: everyone.
"""

from __future__ import annotations

from typing import Mapping

from cockpit.policy.graph import AccountGraph
from cockpit.config.scopes import Scope
from cockpit.resources.state import Resource

Table = Mapping[tuple[str, str], Mapping[str, Resource]]


def changed_scopes(old: Table, new: Table, field: str | None = None) -> set[tuple[str, str]]:
    """Scopes whose grants differ: a name added or removed, or its `field` changed."""
    changed = set()
    empty: Mapping[str, Resource] = {}
    for scope in old.keys() | new.keys():
        before, after = old.get(scope, empty), new.get(scope, empty)
        if before.keys() != after.keys():
            changed.add(scope)
        elif field is not None:
            for name, grant in before.items():
                other = after[name]
                if grant is not other and grant.fields.get(field) != other.fields.get(field):
                    changed.add(scope)
                    break
    return changed


def affected_users(
    old: AccountGraph, new: AccountGraph, domain: str, what: str, moved: set[str] | None = None
) -> set[str] | None:
    """Users whose `what` (model, agent, connection, listing) may differ; None: everyone.
    `moved` is `moved_users` of the domain, when the caller already has it."""
    if what == "model":
        if old.model_policy(domain) != new.model_policy(domain):
            return None
        scopes = changed_scopes(old.model_grants[domain], new.model_grants[domain], "access")
    elif what == "agent":
        if old.agents.keys() != new.agents.keys():
            return None
        scopes = changed_scopes(old.agent_grants, new.agent_grants)
    elif what == "connection":
        if old.connections.keys() != new.connections.keys():
            return None
        scopes = changed_scopes(old.connection_grants, new.connection_grants)
    elif what == "listing":
        if _published(old) != _published(new) or old.open_listings != new.open_listings:
            return None
        scopes = changed_scopes(old.listing_grants, new.listing_grants)
    else:
        raise ValueError(f"unknown access kind {what!r}")
    reached = _reached(old, new, domain, scopes)
    if reached is None:
        return None
    return reached | (moved_users(old, new, domain) if moved is None else moved)


def _published(graph: AccountGraph) -> dict[str, bool]:
    return {name: l.fields.get("published") is not False for name, l in graph.listings.items()}


def _reached(old: AccountGraph, new: AccountGraph, domain: str, scopes: set[tuple[str, str]]) -> set[str] | None:
    """The users the scopes reach in either state; None when one of them reaches everyone."""
    if any(scope_type not in ("user", "team", "org") for scope_type, _ in scopes):
        return None
    users: set[str] = set()
    for graph in (old, new):
        directory = graph.directory(domain)
        for scope in scopes:
            users |= directory.users_of(Scope(*scope))
    return users


def moved_users(old: AccountGraph, new: AccountGraph, domain: str) -> set[str]:
    """Users added, removed, or whose teams or orgs differ."""
    before, after = old.directory(domain), new.directory(domain)
    moved = set(before.users.keys() ^ after.users.keys())
    if before.user_teams == after.user_teams and before.user_orgs == after.user_orgs:
        return moved
    for user in before.user_teams.keys() | after.user_teams.keys() | before.user_orgs.keys() | after.user_orgs.keys():
        if before.teams_of(user) != after.teams_of(user) or before.orgs_of(user) != after.orgs_of(user):
            moved.add(user)
    return moved
