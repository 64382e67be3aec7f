"""Feature entitlements and effective features.

The domain comes with the request (`?domain=console|copilot`) and the caller must be an admin
of that domain. Effective features come from `cockpit.policy.features`: the most specific level
with an entitlement wins, and the account's feature pack is both the default and the ceiling
(the old system ignored the pack). Without `feature_code`, every feature of the pack and every
feature entitled on the chain is answered.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from cockpit.policy.features import FeatureDecision, effective_features, feature_access
from cockpit.server.deps import connection
from cockpit.server.guards import require_account, require_domain_admin
from cockpit.runtime.snapshots import AccountSnapshot, account_snapshot
from cockpit.server.reads import DOMAINS, Page, json_body, list_snapshot, no_nul, page, paged_rows, refusals, request_context, scopes_in
from cockpit.server.subjects import graph_for, parse_scope, resolution_order, source_fields, subject, subject_fields
from cockpit.server.wire import resource_json
from cockpit.store.queries.grants import feature_entitlements_page

router = APIRouter(tags=["features"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))


async def admin_of_requested_domain(request: Request, domain: str | None = None) -> tuple[uuid.UUID, str]:
    """The old guard for `/v1/features/*`: admin of the domain the request names."""
    ctx = request_context(request)
    require_account(ctx)
    normal = (domain or "").strip().lower()
    if normal not in DOMAINS:
        raise HTTPException(400, "domain must be console|copilot")
    return require_domain_admin(ctx, normal), normal


def decision_fields(snapshot: AccountSnapshot, decision: FeatureDecision) -> dict[str, Any]:
    domain = decision.domain
    entitlements = [s for s in decision.sources if s.type == "feature_entitlement"]
    if entitlements:
        resolved = snapshot.scope_fields(domain, parse_scope(entitlements[0].scope))
    elif decision.level == "feature_pack" and decision.enabled:
        resolved = {**snapshot.scope_fields(domain, parse_scope("account")), "via": "feature_pack"}
    else:
        resolved = None
    return {
        "domain": domain,
        "feature_code": decision.feature,
        "effective_enabled": decision.enabled,
        "effective_config": dict(decision.config),
        "level": decision.level,
        "resolved_from": resolved,
        "candidates": [
            {
                "id": snapshot.row_id("feature_entitlement", tuple(s.key)),
                "feature_code": decision.feature,
                "enabled": s.detail == "enabled",
                **snapshot.scope_fields(domain, parse_scope(s.scope)),
            }
            for s in entitlements
        ],
        "why": decision.why,
        "sources": [source_fields(snapshot, domain, s) for s in decision.sources],
    }


@router.get("/v1/features/entitlements", responses=refusals(400))
def list_entitlements(
    request: Request,
    feature_code: str | None = None,
    at: Page = Depends(page),
    guard: tuple[uuid.UUID, str] = Depends(admin_of_requested_domain),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    account_id, domain = guard
    rows = feature_entitlements_page(conn, account_id, domain, feature_code.strip() if feature_code else None, at)
    scopes = scopes_in(list_snapshot(request, conn, account_id), domain)
    return {"domain": domain, **paged_rows(rows, lambda found: [resource_json("feature_entitlement", r, scopes) for r in found])}


@router.get("/v1/features/effective", responses=refusals(400, 404))
async def effective(
    request: Request,
    feature_code: str | None = None,
    user_id: str | None = None,
    email: str | None = None,
    team_id: str | None = None,
    org_id: str | None = None,
    at: Page = Depends(page),
    guard: tuple[uuid.UUID, str] = Depends(admin_of_requested_domain),
) -> JSONResponse:
    account_id, domain = guard
    snapshot = await account_snapshot(request, account_id)
    who = subject(snapshot, domain, user_id=user_id, email=email, team_id=team_id, org_id=org_id)
    graph = graph_for(snapshot, who)
    common = {**subject_fields(snapshot, who), "resolution_order": resolution_order(snapshot, graph, who)}
    if feature_code and feature_code.strip():
        return json_body({**decision_fields(snapshot, feature_access(graph, domain, who.name, feature_code.strip())), **common})
    decisions = effective_features(graph, domain, who.name)
    return json_body({
        "domain": domain,
        **common,
        "enabled_features": [d.feature for d in decisions if d.enabled],
        "items": [decision_fields(snapshot, d) for d in at.slice(decisions)],
        "total": len(decisions),
    })
