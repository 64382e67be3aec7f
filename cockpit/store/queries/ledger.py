"""Usage-ledger aggregates for the cost endpoints: credits and raw cost summed per group, most
credits first, optionally within [since, until)."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.filters import window
from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import usage_ledger

ledger = usage_ledger.c


def totals_by(
    connection: Connection, account_id: uuid.UUID, column: str, since: dt.datetime | None, until: dt.datetime | None, at: Page
) -> RowPage:
    """Copilot ledger totals grouped on one column: rows of (`key`, `raw_cost`, `credits`)."""
    key = ledger[column]
    credits = sa.func.sum(ledger.credits)
    query = (
        sa.select(key.label("key"), sa.func.sum(ledger.raw_cost).label("raw_cost"), credits.label("credits"))
        .where(ledger.account_id == account_id, ledger.domain == "copilot", *window(ledger.created_at, since, until))
        .group_by(key)
        .order_by(credits.desc(), key)
    )
    return page_of(connection, query, at)


def totals_by_item(
    connection: Connection,
    account_id: uuid.UUID,
    domain: str,
    *,
    org_key: str | None,
    team_key: str | None,
    user_email: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    at: Page,
) -> RowPage:
    """The domain's ledger grouped by (model, agent, connection, guardrail): rows with those
    four names, `raw_cost` and `credits_incurred`; the org, team and user written on the
    ledger rows narrow it (all must match)."""
    filters = [ledger.account_id == account_id, ledger.domain == domain, *window(ledger.created_at, since, until)]
    for value, column in ((org_key, ledger.org_key), (team_key, ledger.team_key), (user_email, ledger.user_email)):
        if value is not None:
            filters.append(column == value)
    group = (ledger.model_name, ledger.agent_name, ledger.connection_name, ledger.guardrail_code)
    credits = sa.func.sum(ledger.credits)
    query = (
        sa.select(*group, sa.func.sum(ledger.raw_cost).label("raw_cost"), credits.label("credits_incurred"))
        .where(*filters)
        .group_by(*group)
        .order_by(credits.desc(), *group)
    )
    return page_of(connection, query, at)
