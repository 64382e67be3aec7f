"""Accounts as super admins see them (every account, not only the caller's), their admins,
SSO settings (never the encrypted columns) and credit allocation."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.filters import by_ref
from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import account_admins, account_sso, accounts

SSO_COLUMNS = (
    account_sso.c.id, account_sso.c.account_id, account_sso.c.provider, account_sso.c.enabled,
    account_sso.c.settings, account_sso.c.created_at, account_sso.c.updated_at,
)
"""Everything but the secret settings."""

ALLOCATION_COLUMNS = (
    accounts.c.id.label("account_id"),
    accounts.c.name.label("account_name"),
    accounts.c.monthly_credits,
    accounts.c.overflow_limit,
    accounts.c.credit_factor,
    accounts.c.created_at,
    accounts.c.updated_at,
)


def account_by_ref(connection: Connection, ref: str) -> Any | None:
    """The account named by its id or its name."""
    return connection.execute(sa.select(accounts).where(by_ref(accounts, ref))).first()


def account_named(connection: Connection, name: str) -> Any | None:
    """The id and workspace of the account called `name`."""
    return connection.execute(sa.select(accounts.c.id, accounts.c.workspace).where(accounts.c.name == name)).first()


def accounts_page(connection: Connection, status: str | None, at: Page) -> RowPage:
    """Every account, newest first, optionally of one status."""
    query = sa.select(accounts).order_by(accounts.c.created_at.desc(), accounts.c.name)
    if status is not None:
        query = query.where(accounts.c.status == status)
    return page_of(connection, query, at)


def _admins(account_ids: list[uuid.UUID]) -> sa.Select:
    return sa.select(account_admins).where(account_admins.c.account_id.in_(account_ids))


def admins_of(connection: Connection, account_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """Each account's admins, newest first."""
    found: dict[uuid.UUID, list[Any]] = {i: [] for i in account_ids}
    if account_ids:
        for admin in connection.execute(_admins(account_ids).order_by(account_admins.c.created_at.desc(), account_admins.c.email)):
            found[admin.account_id].append(admin)
    return found


def admins_page(connection: Connection, account_id: uuid.UUID, at: Page) -> RowPage:
    query = _admins([account_id]).order_by(account_admins.c.created_at.desc(), account_admins.c.email)
    return page_of(connection, query, at)


def admins_oldest_first(connection: Connection, account_id: uuid.UUID) -> list[Any]:
    return list(connection.execute(_admins([account_id]).order_by(account_admins.c.created_at, account_admins.c.email)).all())


def sso_of(connection: Connection, account_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Each account's SSO row, for the accounts that have one."""
    if not account_ids:
        return {}
    return {r.account_id: r for r in connection.execute(sa.select(*SSO_COLUMNS).where(account_sso.c.account_id.in_(account_ids)))}


def allocation_by_ref(connection: Connection, ref: str) -> Any | None:
    """One account's credits, named by its id or its name."""
    return connection.execute(sa.select(*ALLOCATION_COLUMNS).where(by_ref(accounts, ref))).first()


def allocation_of(connection: Connection, account_id: uuid.UUID) -> Any | None:
    return connection.execute(sa.select(*ALLOCATION_COLUMNS).where(accounts.c.id == account_id)).first()


def allocations_page(connection: Connection, at: Page) -> RowPage:
    """Every account's credits, the most recently changed first."""
    query = sa.select(*ALLOCATION_COLUMNS).order_by(accounts.c.updated_at.desc(), accounts.c.name)
    return page_of(connection, query, at)
