"""Copilot connections. Secrets never leave: the encrypted columns are not even selected, and
`secret_json` always reads `{"masked": true}`.

A connection is named in the path by its id or its name. The old API had no grant listing;
here a connection's grants come with it and at `/{id}/grants`.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy.engine import Connection

from cockpit.runtime.snapshots import AccountSnapshot
from cockpit.server.deps import connection
from cockpit.server.reads import Page, domain_admin, item, list_snapshot, no_nul, page, paged, paged_rows, refusals, scopes_in
from cockpit.server.wire import resource_json
from cockpit.store.queries.connections import connection_by_ref, connections_page
from cockpit.store.queries.grants import scope_grants_of

router = APIRouter(tags=["connections"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))
copilot_admin = domain_admin("copilot")

CONNECTION_TYPES = ("openapi", "mcp", "composio")


def connection_type(value: str) -> str:
    """A type as the old API took it: any case, `integration` for composio."""
    normal = value.strip().lower()
    normal = "composio" if normal == "integration" else normal
    if normal not in CONNECTION_TYPES:
        raise HTTPException(400, "connection_type must be openapi|mcp|composio")
    return normal


def connection_row(conn: Connection, account_id: uuid.UUID, ref: str) -> Any:
    row = connection_by_ref(conn, account_id, ref)
    if row is None:
        raise HTTPException(404, "Connection not found")
    return row


def grants_of(conn: Connection, snapshot: AccountSnapshot, connection_id: uuid.UUID) -> list[dict[str, Any]]:
    scopes = scopes_in(snapshot, "copilot")
    account = {"account_id": str(snapshot.account_id)}
    return [resource_json("connection_grant", g, scopes, account) for g in scope_grants_of(conn, "connection_grant", [connection_id])[connection_id]]


@router.get("/v1/copilot/connections", responses=refusals(400))
def list_connections(
    connection_type_: str | None = Query(None, alias="connection_type"),
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    wanted = connection_type(connection_type_) if connection_type_ else None
    return paged_rows(connections_page(conn, account_id, wanted, at), lambda rows: [resource_json("connection", r) for r in rows])


@router.get("/v1/copilot/connections/{connection_id}", responses=refusals(404))
def get_connection(connection_id: str, request: Request, account_id: uuid.UUID = Depends(copilot_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    row = connection_row(conn, account_id, connection_id)
    return item({**resource_json("connection", row), "grants": grants_of(conn, list_snapshot(request, conn, account_id), row.id)})


@router.get("/v1/copilot/connections/{connection_id}/grants", responses=refusals(404))
def list_connection_grants(
    connection_id: str,
    request: Request,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    row = connection_row(conn, account_id, connection_id)
    return paged(grants_of(conn, list_snapshot(request, conn, account_id), row.id), at)
