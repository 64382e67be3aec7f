"""Grants as lists: model grants and feature entitlements of a domain, and the copilot-scope
grants of agents, connections and marketplace listings."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import agent_grants, connection_grants, feature_entitlements, marketplace_grants, model_grants

SCOPE_GRANTS = {
    "agent_grant": (agent_grants, "agent_id"),
    "connection_grant": (connection_grants, "connection_id"),
    "marketplace_grant": (marketplace_grants, "listing_id"),
}
"""Resource type → its table and the column naming the granted thing."""


def model_grants_page(connection: Connection, account_id: uuid.UUID, domain: str, model: str | None, at: Page) -> RowPage:
    c = model_grants.c
    query = (
        sa.select(model_grants)
        .where(c.account_id == account_id, c.domain == domain)
        .order_by(c.created_at.desc(), c.model_name, c.scope_type, c.scope_key)
    )
    if model:
        query = query.where(c.model_name == model)
    return page_of(connection, query, at)


def feature_entitlements_page(connection: Connection, account_id: uuid.UUID, domain: str, feature: str | None, at: Page) -> RowPage:
    c = feature_entitlements.c
    query = (
        sa.select(feature_entitlements)
        .where(c.account_id == account_id, c.domain == domain)
        .order_by(c.created_at.desc(), c.feature, c.scope_type, c.scope_key)
    )
    if feature is not None:
        query = query.where(c.feature == feature)
    return page_of(connection, query, at)


def scope_grants_of(connection: Connection, type_name: str, parent_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """The grants of each agent, connection or listing (`type_name` is the grant's resource
    type), newest first."""
    found: dict[uuid.UUID, list[Any]] = {parent: [] for parent in parent_ids}
    if not parent_ids:
        return found
    table, parent_column = SCOPE_GRANTS[type_name]
    rows = connection.execute(
        sa.select(table)
        .where(table.c[parent_column].in_(parent_ids))
        .order_by(table.c.created_at.desc(), table.c.scope_type, table.c.scope_key)
    ).all()
    for row in rows:
        found[getattr(row, parent_column)].append(row)
    return found
