"""The copilot marketplace: listings, their grants, and discover.

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

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.engine import Connection

from cockpit.policy.marketplace import discover as discover_listings
from cockpit.runtime.snapshots import AccountSnapshot, snapshot_cache
from cockpit.server.deps import connection
from cockpit.server.reads import Page, domain_admin, item, list_snapshot, no_nul, page, paged, refusals, scopes_in
from cockpit.server.subjects import graph_for, parse_scope, source_fields, subject, subject_fields
from cockpit.server.wire import resource_json
from cockpit.store.queries.grants import scope_grants_of
from cockpit.store.queries.marketplace import listing_by_ref, listings_of

router = APIRouter(tags=["marketplace"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))
copilot_admin = domain_admin("copilot")
NOT_FOUND = "Marketplace listing not found"


def listing_row(conn: Connection, account_id: uuid.UUID, ref: str) -> Any:
    row = listing_by_ref(conn, account_id, ref)
    if row is None:
        raise HTTPException(404, NOT_FOUND)
    return row


def grants_of(conn: Connection, snapshot: AccountSnapshot, listing_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    scopes = scopes_in(snapshot, "copilot")
    account = {"account_id": str(snapshot.account_id)}
    return {
        listing: [resource_json("marketplace_grant", g, scopes, account) for g in grants]
        for listing, grants in scope_grants_of(conn, "marketplace_grant", listing_ids).items()
    }


def listings_json(conn: Connection, snapshot: AccountSnapshot, rows: list[Any], include_grants: bool) -> list[dict[str, Any]]:
    """Listings with their entity's row id (agent or connection), and their grants if asked."""
    grants = grants_of(conn, snapshot, [r.id for r in rows]) if include_grants else {}
    result = []
    for row in rows:
        entity_id = snapshot.row_id(row.entity_type, (row.entity_name,)) if row.entity_type in ("agent", "connection") else None
        fields = resource_json("marketplace_listing", row, values={"entity_id": entity_id})
        if include_grants:
            fields["grants"] = grants[row.id]
        result.append(fields)
    return result


@router.get("/v1/copilot/marketplace")
def list_listings(
    request: Request,
    published_only: bool = False,
    title: str | None = None,
    entity_type: str | None = None,
    include_grants: bool = False,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    rows = listings_of(conn, account_id, title=title, entity_type=entity_type, published_only=published_only)
    snapshot = list_snapshot(request, conn, account_id)
    return {"items": listings_json(conn, snapshot, at.slice(rows), include_grants), "total": len(rows)}


@router.get("/v1/copilot/marketplace/discover", responses=refusals(400, 404))
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
    published = listings_of(conn, account_id, title=title, entity_type=entity_type, published_only=True)
    rows = [r for r in published if f"{r.entity_type}:{r.entity_name}" in visible]
    shown = at.slice(rows)
    items = []
    for fields, row in zip(listings_json(conn, snapshot, shown, include_grants=False), shown):
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


@router.get("/v1/copilot/marketplace/{listing}", responses=refusals(404))
def get_listing(listing: str, request: Request, account_id: uuid.UUID = Depends(copilot_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    row = listing_row(conn, account_id, listing)
    return item(listings_json(conn, list_snapshot(request, conn, account_id), [row], include_grants=True)[0])


@router.get("/v1/copilot/marketplace/{listing}/grants", responses=refusals(404))
def list_listing_grants(
    listing: str,
    request: Request,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    row = listing_row(conn, account_id, listing)
    return paged(grants_of(conn, list_snapshot(request, conn, account_id), [row.id])[row.id], at)
