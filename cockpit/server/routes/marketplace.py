"""The copilot marketplace (seed-behaviour §12): listings, their grants, and discover.

A listing names its entity by name (`agent:helpdesk`); responses give the old `entity_id` (the
agent's or connection's row id) beside `entity_name`. A listing is named in the path by its id
or as `entity_type:entity_name`. Discover comes from `cockpit.policy.marketplace.discover`:
published listings with no grants are visible to the whole account, others to the users their
grants reach, membership expanded from the copilot directory (the old system matched only the
ids the caller passed).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.engine import Connection

from cockpit.policy.marketplace import discover as discover_listings
from cockpit.server.deps import connection
from cockpit.server.reads import Page, as_uuid, domain_admin, item, page, paged, plain, no_nul, refusals, scope_grants
from cockpit.runtime.snapshots import snapshot_cache
from cockpit.server.subjects import graph_for, parse_scope, source_fields, subject, subject_fields
from cockpit.store.tables import agents, connections, marketplace_grants, marketplace_listings

router = APIRouter(prefix="/v1/copilot/marketplace", tags=["marketplace"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))
copilot_admin = domain_admin("copilot")
NOT_FOUND = "Marketplace listing not found"
listings = marketplace_listings


def listings_query(account_id: uuid.UUID) -> sa.Select:
    return sa.select(listings).where(listings.c.account_id == account_id).order_by(
        listings.c.created_at.desc(), listings.c.entity_type, listings.c.entity_name
    )


def filtered(query: sa.Select, title: str | None, entity_type: str | None) -> sa.Select:
    if title:
        query = query.where(sa.func.lower(listings.c.title).contains(title.strip().lower(), autoescape=True))
    if entity_type:
        query = query.where(listings.c.entity_type == entity_type.strip().lower())
    return query


def listing_row(conn: Connection, account_id: uuid.UUID, ref: str) -> Any:
    query = sa.select(listings).where(listings.c.account_id == account_id)
    by_id = as_uuid(ref)
    if by_id:
        query = query.where(listings.c.id == by_id)
    else:
        entity_type, _, entity_name = ref.partition(":")
        query = query.where(listings.c.entity_type == entity_type, listings.c.entity_name == entity_name)
    row = conn.execute(query).first()
    if row is None:
        raise HTTPException(404, NOT_FOUND)
    return row


def entity_ids(conn: Connection, account_id: uuid.UUID, rows: list[Any]) -> dict[tuple[str, str], str]:
    """(entity_type, entity_name) → the agent's or connection's row id, for a page of listings."""
    found: dict[tuple[str, str], str] = {}
    for entity_type, table in (("agent", agents), ("connection", connections)):
        names = sorted({r.entity_name for r in rows if r.entity_type == entity_type})
        if names:
            for name, row_id in conn.execute(
                sa.select(table.c.name, table.c.id).where(table.c.account_id == account_id, table.c.name.in_(names))
            ):
                found[(entity_type, name)] = str(row_id)
    return found


def grants_of(conn: Connection, account_id: uuid.UUID, listing_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    return scope_grants(
        conn, account_id, marketplace_grants, "listing_id", listing_ids, "marketplace_id",
        lambda row: {"updated_at": plain(row.updated_at)},
    )


def listings_json(conn: Connection, account_id: uuid.UUID, rows: list[Any], include_grants: bool) -> list[dict[str, Any]]:
    entities = entity_ids(conn, account_id, rows)
    grants = grants_of(conn, account_id, [r.id for r in rows]) if include_grants else {}
    result = []
    for row in rows:
        fields = {
            "id": str(row.id),
            "account_id": str(row.account_id),
            "entity_type": row.entity_type,
            "entity_id": entities.get((row.entity_type, row.entity_name)),
            "entity_name": row.entity_name,
            "title": row.title,
            "description": row.description,
            "is_published": bool(row.published),
            "is_featured": bool(row.featured),
            "is_verified": bool(row.verified),
            "pricing_model": row.pricing_model,
            "version": row.version,
            "author": row.author,
            "created_at": plain(row.created_at),
            "updated_at": plain(row.updated_at),
        }
        if include_grants:
            fields["grants"] = grants[row.id]
        result.append(fields)
    return result


@router.get("")
def list_listings(
    published_only: bool = False,
    title: str | None = None,
    entity_type: str | None = None,
    include_grants: bool = False,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    query = filtered(listings_query(account_id), title, entity_type)
    if published_only:
        query = query.where(listings.c.published.is_(True))
    rows = conn.execute(query).all()
    return {"items": listings_json(conn, account_id, at.slice(rows), include_grants), "total": len(rows)}


@router.get("/discover", responses=refusals(400, 404))
def discover(
    request: Request,
    user_id: str | None = None,
    email: str | None = None,
    team_id: str | None = None,
    org_id: str | None = None,
    title: str | None = None,
    entity_type: str | None = None,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    """What a user (by id or e-mail; teams and orgs from the directory), or a team or org,
    can discover, each listing with the visibility that lets them see it and why."""
    snapshot = snapshot_cache(request).get(conn, account_id)
    who = subject(snapshot, "copilot", user_id=user_id, email=email, team_id=team_id, org_id=org_id)
    visible = {d.listing: d for d in discover_listings(graph_for(snapshot, who), who.name)}
    query = filtered(listings_query(account_id), title, entity_type).where(listings.c.published.is_(True))
    rows = [r for r in conn.execute(query).all() if f"{r.entity_type}:{r.entity_name}" in visible]
    shown = at.slice(rows)
    items = []
    for fields, row in zip(listings_json(conn, account_id, shown, include_grants=False), shown):
        found = visible[f"{row.entity_type}:{row.entity_name}"]
        if found.mode == "granted":
            matched = [snapshot.scope_fields("copilot", parse_scope(s)) for s in found.matched]
            visibility = {"mode": "granted", "matched_scope": f"{matched[0]['scope_type']}:{matched[0]['scope_id']}", "matched": matched}
        else:
            visibility = {"mode": "global", "matched_scope": "global", "matched": []}
        visibility["why"] = found.why
        visibility["sources"] = [source_fields(snapshot, "copilot", s) for s in found.sources]
        items.append({**fields, "visibility": visibility})
    return {**subject_fields(snapshot, who), "items": items, "total": len(rows)}


@router.get("/{listing}", responses=refusals(404))
def get_listing(listing: str, account_id: uuid.UUID = Depends(copilot_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    row = listing_row(conn, account_id, listing)
    return item(listings_json(conn, account_id, [row], include_grants=True)[0])


@router.get("/{listing}/grants", responses=refusals(404))
def list_listing_grants(
    listing: str,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    row = listing_row(conn, account_id, listing)
    return paged(grants_of(conn, account_id, [row.id])[row.id], at)
