"""Copilot connections as lists. The secret never leaves: the encrypted column, its
fingerprint and its references are not even selected."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.filters import by_ref
from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import connections

PUBLIC_COLUMNS = (
    connections.c.id, connections.c.account_id, connections.c.name, connections.c.type,
    connections.c.description, connections.c.credential_visibility,
    connections.c.allow_user_self_manage, connections.c.config,
    connections.c.created_at, connections.c.updated_at,
)
"""Everything but the secret: `secret_encrypted`, its fingerprint and its references."""


def connections_page(connection: Connection, account_id: uuid.UUID, connection_type: str | None, at: Page) -> RowPage:
    query = sa.select(*PUBLIC_COLUMNS).where(connections.c.account_id == account_id).order_by(
        connections.c.created_at.desc(), connections.c.name
    )
    if connection_type is not None:
        query = query.where(connections.c.type == connection_type)
    return page_of(connection, query, at)


def connection_by_ref(connection: Connection, account_id: uuid.UUID, ref: str) -> Any | None:
    """The account's connection named by its id or its name."""
    query = sa.select(*PUBLIC_COLUMNS).where(connections.c.account_id == account_id, by_ref(connections, ref))
    return connection.execute(query).first()
