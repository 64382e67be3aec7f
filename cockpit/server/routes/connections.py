"""Copilot connections (seed-behaviour §8). Secrets never leave: the encrypted columns are not
even selected, and `secret_json` always reads `{"masked": true}`.

A connection is named in the path by its id or its name. The old API had no grant listing;
here a connection's grants come with it and at `/{id}/grants`.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.engine import Connection

from cockpit.server.deps import connection
from cockpit.server.reads import MASKED, Page, as_uuid, domain_admin, item, page, paged, paged_query, plain, no_nul, refusals, scope_grants
from cockpit.store.tables import connection_grants, connections

router = APIRouter(prefix="/v1/copilot/connections", tags=["connections"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))
copilot_admin = domain_admin("copilot")

CONNECTION_TYPES = ("openapi", "mcp", "composio")
PUBLIC_COLUMNS = (
    connections.c.id, connections.c.account_id, connections.c.name, connections.c.type,
    connections.c.description, connections.c.credential_visibility,
    connections.c.allow_user_self_manage, connections.c.config,
    connections.c.created_at, connections.c.updated_at,
)
"""Everything but the secret: `secret_encrypted`, its fingerprint and its references."""


def connection_type(value: str) -> str:
    normal = value.strip().lower()
    normal = "composio" if normal == "integration" else normal
    if normal not in CONNECTION_TYPES:
        raise HTTPException(400, "connection_type must be openapi|mcp|composio")
    return normal


def connection_row(conn: Connection, account_id: uuid.UUID, name_or_id: str) -> Any:
    by_id = as_uuid(name_or_id)
    query = sa.select(*PUBLIC_COLUMNS).where(connections.c.account_id == account_id)
    query = query.where(connections.c.id == by_id if by_id else connections.c.name == name_or_id)
    row = conn.execute(query).first()
    if row is None:
        raise HTTPException(404, "Connection not found")
    return row


def connection_fields(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "account_id": str(row.account_id),
        "connection_type": row.type,
        "name": row.name,
        "description": row.description,
        "credential_visibility": row.credential_visibility,
        "allow_user_self_manage": bool(row.allow_user_self_manage),
        "config_json": row.config or {},
        "secret_json": dict(MASKED),
        "created_at": plain(row.created_at),
        "updated_at": plain(row.updated_at),
    }


def grants_of(conn: Connection, account_id: uuid.UUID, connection_id: uuid.UUID) -> list[dict[str, Any]]:
    return scope_grants(
        conn, account_id, connection_grants, "connection_id", [connection_id], "connection_id",
        lambda row: {"can_manage": bool(row.can_manage)},
    )[connection_id]


@router.get("", responses=refusals(400))
def list_connections(
    connection_type_: str | None = Query(None, alias="connection_type"),
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    query = sa.select(*PUBLIC_COLUMNS).where(connections.c.account_id == account_id).order_by(
        connections.c.created_at.desc(), connections.c.name
    )
    if connection_type_:
        query = query.where(connections.c.type == connection_type(connection_type_))
    return paged_query(conn, query, at, lambda rows: [connection_fields(r) for r in rows])


@router.get("/{connection_id}", responses=refusals(404))
def get_connection(connection_id: str, account_id: uuid.UUID = Depends(copilot_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    row = connection_row(conn, account_id, connection_id)
    return item({**connection_fields(row), "grants": grants_of(conn, account_id, row.id)})


@router.get("/{connection_id}/grants", responses=refusals(404))
def list_connection_grants(
    connection_id: str,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    row = connection_row(conn, account_id, connection_id)
    return paged(grants_of(conn, account_id, row.id), at)
