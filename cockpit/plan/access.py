"""The access impact of a plan: who gains or loses what once it is applied, and why.

Compares the effective access of the actual state with that of the state the database will
hold after the apply (`cockpit.policy.impact`), then groups the access changes under the
planned changes that cause them: the grants at a scope that reaches the person, their
memberships, the account's model policy, the granted thing itself. A reviewer reads "the grant
of gpt-4o at org:engineering (access/models.yaml:12:5) is deleted: 16 people lose gpt-4o", not
16 unexplained lines.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

from cockpit.memory import paused_gc
from cockpit.plan.draft import PlanContext, PlanDraft, PlanSources
from cockpit.plan.model import AccessCause, AccessGroup, ResourceChange
from cockpit.policy.graph import AccountGraph, build_graphs
from cockpit.policy.impact import AccessChange, graphs_impact
from cockpit.policy.model_access import model_access
from cockpit.resources.state import Address, State

_RANK = {False: 0, None: 1, True: 2}
"""Losses first, then budget changes, then gains."""


def compare_access(sources: PlanSources, draft: PlanDraft) -> None:
    """The comparator of access impact: every gain, loss and budget change the plan makes,
    and the same grouped by their causes among the plan's changes (`draft.changes`)."""
    with paused_gc():
        old = build_graphs(sources.actual)
        new = build_graphs(state_after(sources.desired, sources.actual, sources.context))
        draft.access_impact = graphs_impact(old, new)
        draft.access_groups = group_by_cause(draft.access_impact, draft.changes, old, new)


def state_after(desired: State, actual: State, context: PlanContext) -> State:
    """What the database will hold after the apply: the desired state, plus the resources of
    accounts the config dropped, which are suspended rather than deleted."""
    after = State(dict(desired.resources))
    for resource in actual:
        account = resource.account
        if account and account not in context.config_accounts and account not in context.hard_delete_accounts:
            after.add(resource)
    return after


def group_by_cause(
    impact: Iterable[AccessChange],
    changes: Iterable[ResourceChange],
    old: Mapping[str, AccountGraph],
    new: Mapping[str, AccountGraph],
) -> tuple[AccessGroup, ...]:
    """The access changes grouped by (account, domain, what, name, gain/lose) and the planned
    changes that cause them, losses first, each group's causes in the plan's order."""
    planned = {c.address: (i, c) for i, c in enumerate(changes)}
    groups: dict[tuple, list[AccessChange]] = {}
    causes_of: dict[tuple, tuple[AccessCause, ...]] = {}
    for item in impact:
        before = old.get(item.account) or AccountGraph(item.account)
        after = new.get(item.account) or AccountGraph(item.account)
        found: dict[int, ResourceChange] = {}
        for tier in _candidates(item, before, after):
            found = dict(planned[a] for a in tier if a in planned)
            if found:
                break
        causes = tuple(AccessCause(c.action, c.type, c.account, c.key, c.origin) for _, c in sorted(found.items(), key=lambda p: p[0]))
        key = (item.account, item.domain, item.what, item.name, item.gains, tuple(c.type + ":" + "/".join(c.key) for c in causes))
        groups.setdefault(key, []).append(item)
        causes_of[key] = causes
    first: dict[tuple, int] = {}
    for k in groups:  # a cause's groups stay together, ranked by their most serious change
        first[(k[0], k[5])] = min(first.get((k[0], k[5]), 3), _RANK[k[4]])
    ordered = sorted(groups, key=lambda k: (k[0], k[5] == (), first[(k[0], k[5])], k[5], _RANK[k[4]], k[1], k[2], k[3]))
    return tuple(
        AccessGroup(k[0], k[1], k[2], k[3], k[4], causes_of[k], tuple(groups[k])) for k in ordered
    )


def _candidates(item: AccessChange, old: AccountGraph, new: AccountGraph) -> Iterator[list[Address]]:
    """The resources whose change could cause `item`, most direct first, in tiers: the causes
    are the planned changes of the first tier that has any. The thing itself (an agent gone)
    or the grants that decide (and the model policy) come before the memberships that carry
    them, and those before the person's own record (created or removed)."""
    account, domain = item.account, item.domain
    if item.what == "budget":
        scope_type, _, scope_key = item.subject.partition(":")
        plan = item.name
        yield [("budget_allocation", account, (plan, scope_type, scope_key)), ("budget_override", account, (plan, scope_type, scope_key))]
        yield [("budget_plan", account, (plan,))]
        return
    user = item.subject.partition(":")[2]
    scopes = {("user", user), ("account", "")}
    memberships: list[Address] = []
    for graph in (old, new):
        directory = graph.directory(domain)
        scopes.update(("team", t) for t in directory.teams_of(user))
        scopes.update(("org", o) for o in directory.orgs_of(user))
        memberships.extend((f"{domain}_team_member", account, (*team.split("/", 1), user)) for team in directory.teams_of(user))
        memberships.extend((f"{domain}_org_admin", account, (org, user)) for org in directory.orgs_of(user))
    if item.what == "model":
        yield _deciding_model_grants(item, old, new)
    elif item.what in ("agent", "connection"):
        yield [(item.what, account, (item.name,))]
        yield [(f"{item.what}_grant", account, (item.name, *scope)) for scope in scopes]
    elif item.what == "listing":
        entity = tuple(item.name.split(":", 1))
        yield [("marketplace_listing", account, entity)]
        yield [("marketplace_grant", account, (*entity, *scope)) for scope in scopes]
    yield memberships
    yield [(f"{domain}_user", account, (user,))]


def _deciding_model_grants(item: AccessChange, old: AccountGraph, new: AccountGraph) -> list[Address]:
    """The grants that decide the person's access to the model before and after (the most
    specific level with a grant for it), and the account's model policy when it is what cuts
    in or lets through: of these, the ones the plan changes are the cause."""
    user = item.subject.partition(":")[2]
    found: list[Address] = []
    for graph in (old, new):
        for source in model_access(graph, item.domain, user, item.name).sources:
            found.append((source.type, item.account, tuple(source.key)))
    allow_before, deny_before = old.model_policy(item.domain)
    allow_after, deny_after = new.model_policy(item.domain)
    policy_moved = item.name in (allow_before ^ allow_after) | (deny_before ^ deny_after) or bool(allow_before) != bool(allow_after)
    if policy_moved and old.account is not None and new.account is not None:  # not a new or gone account
        found.append(("account", item.account, (item.account,)))
    return found
