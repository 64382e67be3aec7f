"""What the budget metrics of a scrape read: every active plan's limits and what its scopes
used in their current cycle window, for all accounts at once (two grouped queries, whatever
the number of accounts).

A plan's current window is the calendar month or quarter of its `cycle` (their starts are
passed in, so both databases compare the same values), started later by a renewal inside it:
the newest `budget_cycles.window_end` past the calendar start and not after `now`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.tables import UtcDateTime, accounts, budget_allocations, budget_cycles, budget_overrides, budget_plans, usage_ledger


def active_limits(connection: Connection) -> list[Any]:
    """One row per allocated scope of each active plan: account name, plan name, scope type
    and key, and its effective credits (the override's when there is one)."""
    plans, allocations, overrides = budget_plans.c, budget_allocations.c, budget_overrides.c
    override = (
        sa.select(overrides.credits)
        .where(overrides.plan_id == allocations.plan_id, overrides.scope_type == allocations.scope_type, overrides.scope_key == allocations.scope_key)
        .scalar_subquery()
    )
    return connection.execute(
        sa.select(accounts.c.name.label("account"), accounts.c.monthly_credits, plans.name.label("plan"), allocations.scope_type, allocations.scope_key, sa.func.coalesce(override, allocations.credits).label("credits"))
        .select_from(budget_plans.join(accounts, accounts.c.id == plans.account_id).outerjoin(budget_allocations, allocations.plan_id == plans.id))
        .where(plans.active.is_(True))
        .order_by(accounts.c.name, plans.name)
    ).all()


def window_usage(connection: Connection, month_start: dt.datetime, quarter_start: dt.datetime, now: dt.datetime) -> list[Any]:
    """Credits in each active plan's current window, grouped by account name, domain and the
    ledger's org, team and user."""
    plans, cycles, ledger = budget_plans.c, budget_cycles.c, usage_ledger.c
    calendar_start = sa.case((plans.cycle == "quarterly", sa.literal(quarter_start, UtcDateTime())), else_=sa.literal(month_start, UtcDateTime()))
    renewed = (
        sa.select(sa.func.max(cycles.window_end))
        .where(cycles.account_id == plans.account_id, cycles.window_end > calendar_start, cycles.window_end <= sa.literal(now, UtcDateTime()))
        .scalar_subquery()
    )
    windows = (
        sa.select(plans.account_id, accounts.c.name.label("account"), sa.func.coalesce(renewed, calendar_start).label("start"))
        .join(accounts, accounts.c.id == plans.account_id)
        .where(plans.active.is_(True))
        .subquery()
    )
    return connection.execute(
        sa.select(windows.c.account, ledger.domain, ledger.org_key, ledger.team_key, ledger.user_email, sa.func.sum(ledger.credits).label("credits"))
        .select_from(usage_ledger.join(windows, sa.and_(ledger.account_id == windows.c.account_id, ledger.created_at >= windows.c.start)))
        .group_by(windows.c.account, ledger.domain, ledger.org_key, ledger.team_key, ledger.user_email)
    ).all()
