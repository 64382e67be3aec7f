"""Access impact: who gains or loses what between two states (the plan leads with it).

For every account of either state: directory users who gain or lose a model (per domain), an
agent, a connection or a marketplace listing, the budget scopes of the active plan whose
effective allocation changes, the rate limits that change (per scope), and how the models the
account grants are served (deployments, fallbacks, timeout). A user only in the after state gains everything they get; a user
only in the before state loses everything they had. Pure and linear in the size of the states:
two indexes, then one resolution per affected user and kind, sharing the work of users with
the same teams and orgs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Container, Iterable, Iterator

from cockpit.config.scopes import Scope
from cockpit.memory import paused_gc
from cockpit.policy.affected import affected_users, moved_users
from cockpit.policy.allocations import allocation_cents
from cockpit.policy.grants import agent_resolver, connection_resolver
from cockpit.policy.graph import DOMAINS, AccountGraph, build_graphs
from cockpit.policy.marketplace import listing_resolver
from cockpit.policy.model_access import ModelResolver
from cockpit.resources.state import State

Resolve = Callable[[str], frozenset[str]]


@dataclass(frozen=True)
class AccessChange:
    """One person's or scope's effective access that the plan changes."""

    account: str
    domain: str
    subject: str
    """`user:alice@acme.com` or a budget scope such as `org:research`."""
    what: str
    """model, agent, connection, listing, budget, rate limit or routing."""
    name: str
    gains: bool | None
    """True: gains access; False: loses it; None: a changed amount (budgets)."""
    before: Any = None
    after: Any = None


def access_impact(before: State, after: State) -> tuple[AccessChange, ...]:
    """Every gain, loss and budget change, sorted by (account, domain, subject, what, name)."""
    with paused_gc():
        return graphs_impact(build_graphs(before), build_graphs(after))


def graphs_impact(old: dict[str, AccountGraph], new: dict[str, AccountGraph]) -> tuple[AccessChange, ...]:
    """`access_impact` of two states' indexes (`graph.build_graphs`), for a caller that reads
    them again (the plan, to find what caused each change)."""
    changes: list[AccessChange] = []
    for account in sorted(old.keys() | new.keys()):
        changes.extend(account_impact(old.get(account) or AccountGraph(account), new.get(account) or AccountGraph(account)))
    changes.sort(key=lambda c: (c.account, c.domain, c.subject, c.what, c.name))
    return tuple(changes)


KINDS: tuple[tuple[str, str, Callable[[AccountGraph], Resolve]], ...] = (
    ("console", "model", lambda g: ModelResolver(g, "console").allowed),
    ("copilot", "model", lambda g: ModelResolver(g, "copilot").allowed),
    ("copilot", "agent", lambda g: agent_resolver(g).names),
    ("copilot", "connection", lambda g: connection_resolver(g).names),
    ("copilot", "listing", lambda g: listing_resolver(g).names),
)
"""(domain, what, resolver of one user's names) for each kind of access the impact reports."""


def account_impact(old: AccountGraph, new: AccountGraph, narrow: bool = True) -> Iterator[AccessChange]:
    """The changes of one account (unsorted). `narrow` resolves only the users a change can
    reach (`affected.py`); without it, every user (the reference the tests compare it with)."""
    moved: dict[str, set[str]] = {}
    for domain, what, resolver in KINDS:
        old_users, new_users = old.directory(domain).users, new.directory(domain).users
        users = None
        if narrow:
            if domain not in moved:
                moved[domain] = moved_users(old, new, domain)
            users = affected_users(old, new, domain, what, moved[domain])
        if users is None:
            users = old_users.keys() | new_users.keys()
        yield from _user_changes(new.name, domain, what, users, old_users, new_users, resolver(old), resolver(new))
    yield from _budget_changes(old, new)
    yield from rate_limit_changes(old, new)
    yield from routing_changes(old, new)


def _user_changes(
    account: str,
    domain: str,
    what: str,
    users: Iterable[str],
    old_users: Container[str],
    new_users: Container[str],
    before: Resolve,
    after: Resolve,
) -> Iterator[AccessChange]:
    """Gains and losses of `users`; someone missing from a directory has nothing there."""
    nothing: frozenset[str] = frozenset()
    for user in users:
        had = before(user) if user in old_users else nothing
        has = after(user) if user in new_users else nothing
        if had == has:
            continue
        subject = f"user:{user}"
        for name in has - had:
            yield AccessChange(account, domain, subject, what, name, True)
        for name in had - has:
            yield AccessChange(account, domain, subject, what, name, False)


def _budget_changes(old: AccountGraph, new: AccountGraph) -> Iterator[AccessChange]:
    """Scopes of the active plan whose effective allocation changes (a switch of active plan
    compares the old plan's figures with the new one's)."""
    old_plan, new_plan = old.active_plan(), new.active_plan()
    before = allocation_cents(old, old_plan) if old_plan else {}
    after = allocation_cents(new, new_plan) if new_plan else {}
    for scope in before.keys() | after.keys():
        was, now = before.get(scope), after.get(scope)
        if was == now:
            continue
        yield AccessChange(
            new.name, "copilot", str(scope), "budget",
            (new_plan if scope in after else old_plan) or "",
            None,
            None if was is None else was / 100,
            None if now is None else now / 100,
        )


def rate_limit_changes(old: AccountGraph, new: AccountGraph) -> Iterator[AccessChange]:
    """Each rpm or tpm a plan sets, changes or removes, per domain and scope:
    `team:research/ml rate limit gpt-4o rpm: 60 → 120`."""
    for domain in DOMAINS:
        before, after = _limits(old, domain), _limits(new, domain)
        for key in sorted(before.keys() | after.keys()):
            scope, model, per = key
            for metric in ("rpm", "tpm"):
                was = (before.get(key) or {}).get(metric)
                now = (after.get(key) or {}).get(metric)
                if was != now:
                    name = " ".join(part for part in (model, "per user" if per else "", metric) if part)
                    yield AccessChange(new.name, domain, str(scope), "rate limit", name, None, was, now)


def _limits(graph: AccountGraph, domain: str) -> dict[tuple[Scope, str, str], dict]:
    return {
        (scope, limit.key[3], limit.key[4]): dict(limit.fields)
        for scope, limits in graph.rate_limits.get(domain, {}).items()
        for limit in limits
    }


def routing_changes(old: AccountGraph, new: AccountGraph) -> Iterator[AccessChange]:
    """How the plan changes the serving of catalog models this account grants (in each domain
    that grants them): deployments added, removed or reweighted, fallbacks, timeout. Models
    new to the catalog are left out: their users gain them instead."""
    changed = {}
    for name in old.catalog.keys() & new.catalog.keys():
        before, after = _route(old, name), _route(new, name)
        if before != after:
            changed[name] = (before, after)
    if not changed:
        return
    for domain in DOMAINS:
        granted = {m for by_model in new.model_grants[domain].values() for m, g in by_model.items() if g.fields.get("access") != "deny"}
        for name in sorted(changed.keys() & granted):
            before, after = changed[name]
            subject = f"model:{name}"
            for deployment in sorted(before["deployments"].keys() | after["deployments"].keys()):
                was, now = before["deployments"].get(deployment), after["deployments"].get(deployment)
                if was != now:
                    yield AccessChange(new.name, domain, subject, "routing", f"deployment {deployment}", None, was, now)
            for part in ("fallbacks", "timeout_seconds"):
                if before[part] != after[part]:
                    yield AccessChange(new.name, domain, subject, "routing", part, None, before[part], after[part])


def _route(graph: AccountGraph, model: str) -> dict:
    """What routing of a model the plan shows: each deployment's upstream, weight and limits."""
    fields = graph.catalog[model].fields
    deployments = {}
    for resource in graph.deployments.get(model, ()):
        summary = {"model": (resource.fields.get("litellm") or {}).get("model"), "weight": resource.fields.get("weight")}
        summary.update({k: resource.fields[k] for k in ("rpm", "tpm") if resource.fields.get(k) is not None})
        deployments[resource.key[1]] = summary
    if fields.get("litellm") is not None:
        # the one deployment of `litellm:`, named as `cockpit.proxy.routing` names it
        deployments["default"] = {"model": fields["litellm"].get("model"), "weight": 1}
    return {"deployments": deployments, "fallbacks": list(fields.get("fallbacks") or []), "timeout_seconds": fields.get("timeout_seconds")}
