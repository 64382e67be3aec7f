"""Access impact: who gains or loses what between two states (the plan leads with it).

For every account of either state: directory users who gain or lose a model (per domain), an
agent, a connection or a marketplace listing, and the budget scopes of the active plan whose
effective allocation changes. A user only in the after state gains everything they get; a user
only in the before state loses everything they had. Pure and linear in the size of the states:
two indexes, then one resolution per affected user and kind, sharing the work of users with
the same teams and orgs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Container, Iterable, Iterator

from cockpit.policy.affected import affected_users, moved_users
from cockpit.policy.allocations import allocation_cents
from cockpit.memory import paused_gc
from cockpit.policy.graph import AccountGraph, build_graphs
from cockpit.policy.grants import agent_resolver, connection_resolver
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
    """model, agent, connection, listing or budget."""
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
