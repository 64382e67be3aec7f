"""Budget plans and the cycle records renewal writes."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import budget_cycles, budget_plans

PLAN_COLUMNS = (
    budget_plans.c.id,
    budget_plans.c.account_id,
    budget_plans.c.name,
    budget_plans.c.cycle,
    budget_plans.c.active,
    budget_plans.c.allow_overflow,
    budget_plans.c.created_at,
    budget_plans.c.updated_at,
)


def active_plan(connection: Connection, account_id: uuid.UUID) -> Any | None:
    """The account's active plan (the first by name, should there be two)."""
    return connection.execute(
        sa.select(*PLAN_COLUMNS)
        .where(budget_plans.c.account_id == account_id, budget_plans.c.active.is_(True))
        .order_by(budget_plans.c.name)
        .limit(1)
    ).first()


def cycles_page(connection: Connection, account_id: uuid.UUID, at: Page) -> RowPage:
    """Cycle records, newest first, in the old API's field names, with their plan's row id."""
    cycles = budget_cycles.c
    plan_ids = (
        sa.select(budget_plans.c.id)
        .where(budget_plans.c.account_id == account_id, budget_plans.c.name == cycles.plan_name)
        .scalar_subquery()
    )
    query = (
        sa.select(
            cycles.id, cycles.account_id, cycles.plan_name, plan_ids.label("plan_id"),
            cycles.window_start.label("cycle_start"), cycles.window_end.label("cycle_end"),
            cycles.used_credits, cycles.overflow_charge.label("overflow_charge_credits"),
            cycles.rollover_credits, cycles.summary.label("summary_json"), cycles.created_at,
        )
        .where(cycles.account_id == account_id)
        .order_by(cycles.created_at.desc(), cycles.window_start.desc(), cycles.id)
    )
    return page_of(connection, query, at)
