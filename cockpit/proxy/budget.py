"""What limits one caller's spending: the cycle window, the chain of limits, the attribution.

Copilot requests are limited by every allocated level of the caller's chain (their own
allocation, their allocated teams and orgs, or the `pool` when none of those has one) and by
the account (`monthly_credits + overflow_limit`); console requests by the account alone, as
the account-wide cap covers both domains. An account whose `monthly_credits` is 0 has no account-wide cap. A
renewal's rollover adds to the `pool` of the window it rolled into.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.engine import Engine

from cockpit.budgets.counters import Limit, credits
from cockpit.budgets.usage import UTC, Window, current_window, rollover_into, scope_usage
from cockpit.policy.allocations import budget_chain
from cockpit.policy.graph import ACCOUNT
from cockpit.config.scopes import Scope
from cockpit.runtime.snapshots import AccountSnapshot


@dataclass(frozen=True)
class Cycle:
    window: Window
    rollover: Decimal


@dataclass(frozen=True)
class Attribution:
    org: str | None
    team: str | None


def cached_cycle(snapshot: AccountSnapshot, now: dt.datetime) -> Cycle | None:
    """The cycle read for this snapshot, if `now` is still inside its window (no I/O)."""
    found: Cycle | None = snapshot.memo.get("cycle")
    return found if found is not None and found.window.start <= now < found.window.end else None


def cycle_of(engine: Engine, snapshot: AccountSnapshot, now: dt.datetime | None = None) -> Cycle:
    """The account's current cycle (reads the database once per snapshot and window)."""
    now = now or dt.datetime.now(UTC)
    found = cached_cycle(snapshot, now)
    if found is not None:
        return found
    plan = snapshot.graph.active_plan()
    cycle = snapshot.graph.budget_plans[plan].fields.get("cycle") if plan else None
    with engine.connect() as connection:
        window = current_window(connection, snapshot.account_id, cycle, now)
        rollover = rollover_into(connection, snapshot.account_id, window)
    found = snapshot.memo["cycle"] = Cycle(window, credits(rollover))
    return found


def limits_for(snapshot: AccountSnapshot, domain: str, user: str, cycle: Cycle) -> tuple[Limit, ...]:
    """The caller's limits, most specific first (the first refused names the reason)."""
    key = ("limits", domain, user, cycle.rollover)
    found = snapshot.memo.get(key)
    if found is None:
        found = snapshot.memo[key] = _limits(snapshot, domain, user, cycle.rollover)
    return found


def _limits(snapshot: AccountSnapshot, domain: str, user: str, rollover: Decimal) -> tuple[Limit, ...]:
    fields = snapshot.graph.fields
    monthly = credits(fields.get("monthly_credits") or 0)
    account = (Limit(str(ACCOUNT), monthly + credits(fields.get("overflow_limit") or 0)),) if monthly > 0 else ()
    if domain != "copilot":
        return account
    chain = [
        Limit(a.scope, credits(a.limit) + (rollover if a.scope == "pool" else 0))
        for a in budget_chain(snapshot.graph, user)
        if a.scope != str(ACCOUNT)
    ]
    return (*chain, *account)


def attribution(snapshot: AccountSnapshot, domain: str, user: str) -> Attribution:
    """The org and team written on the caller's ledger rows: the first allocated team (else
    the first team) and its org, so that usage by scope, read from the ledger, counts the row
    where the counters did."""
    key = ("attribution", domain, user)
    found = snapshot.memo.get(key)
    if found is None:
        graph = snapshot.graph
        directory = graph.directory(domain)
        plan = graph.active_plan()
        allocated = graph.allocations.get(plan, {}) if plan else {}
        teams = directory.teams_of(user)
        team = next((t for t in teams if Scope("team", t) in allocated), teams[0] if teams else None)
        orgs = directory.orgs_of(user)
        org = team.partition("/")[0] if team else next((o for o in orgs if Scope("org", o) in allocated), orgs[0] if orgs else None)
        found = snapshot.memo[key] = Attribution(org, team)
    return found


def seed_from_ledger(engine: Engine, snapshot: AccountSnapshot, window: Window):
    """The `Seed` for the counters: the ledger's usage per scope in the window."""
    plan = snapshot.graph.active_plan()
    allocated = set(snapshot.graph.allocations.get(plan, {})) if plan else set()

    def seed(scopes):
        with engine.connect() as connection:
            used = scope_usage(connection, snapshot.account_id, window, allocated)
        return {scope: credits(used[scope]) for scope in scopes}

    return seed



