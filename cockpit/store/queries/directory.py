"""The console and copilot directories as lists: newest first, as the old system listed them;
rows written by one apply share a timestamp, so names break the tie."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import DIRECTORIES


def orgs_page(connection: Connection, domain: str, account_id: uuid.UUID, at: Page) -> RowPage:
    orgs = DIRECTORIES[domain].orgs
    query = sa.select(orgs).where(orgs.c.account_id == account_id).order_by(orgs.c.created_at.desc(), orgs.c.name)
    return page_of(connection, query, at)


def teams_page(connection: Connection, domain: str, account_id: uuid.UUID, org: str | None, at: Page) -> RowPage:
    """Teams with their org's name (`org_name`), optionally of the org called `org`."""
    tables = DIRECTORIES[domain]
    teams, orgs = tables.teams, tables.orgs
    query = (
        sa.select(teams, orgs.c.name.label("org_name"))
        .join(orgs, teams.c.org_id == orgs.c.id)
        .where(teams.c.account_id == account_id)
        .order_by(teams.c.created_at.desc(), orgs.c.name, teams.c.name)
    )
    if org is not None:
        query = query.where(orgs.c.name == org)
    return page_of(connection, query, at)


def users_page(connection: Connection, domain: str, account_id: uuid.UUID, email: str | None, at: Page) -> RowPage:
    users = DIRECTORIES[domain].users
    query = sa.select(users).where(users.c.account_id == account_id).order_by(users.c.created_at.desc(), users.c.email)
    if email is not None:
        query = query.where(users.c.email == email)
    return page_of(connection, query, at)
