"""Model grants and effective model access, at one path per domain.

Effective access is decided by `cockpit.policy.model_access` over the account's graph: the
most specific level of user → the user's teams → their orgs → account with a grant for the
model decides, deny wins within a level, no grant is deny, and the account's `model_policy`
for the domain is a ceiling. The old endpoint answered one model for a chain of ids the caller
passed; this one also takes the user's e-mail, expands membership, and lists every model for
the subject when `model_name` is left out.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from cockpit.policy.model_access import ModelDecision, effective_models, model_access
from cockpit.server.deps import connection
from cockpit.runtime.snapshots import AccountSnapshot, account_snapshot
from cockpit.server.reads import Page, json_body, list_snapshot, no_nul, page, paged_rows, refusals, route_domain, route_domain_admin, scopes_in
from cockpit.server.subjects import graph_for, parse_scope, resolution_order, source_fields, subject, subject_fields
from cockpit.server.wire import resource_json
from cockpit.store.queries.grants import model_grants_page

router = APIRouter(tags=["models"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))


def decision_fields(snapshot: AccountSnapshot, domain: str, decision: ModelDecision) -> dict[str, Any]:
    """One model's answer in the old shape (`effective_access`, `resolved_from`, `candidates`)
    with the new `why` and `sources`."""
    grants = [s for s in decision.sources if s.type == "model_grant"]
    ceiling = [s for s in decision.sources if s.type == "account"]
    denies = [s for s in grants if s.detail == "deny"]
    decisive = denies or grants
    candidates = [
        {
            "id": snapshot.row_id("model_grant", tuple(s.key)),
            "model_name": decision.model,
            "access_mode": s.detail,
            **snapshot.scope_fields(domain, parse_scope(s.scope)),
        }
        for s in grants
    ]
    return {
        "model_name": decision.model,
        "effective_access": "allow" if decision.allowed else "deny",
        "allowed": decision.allowed,
        "level": decision.level,
        "resolved_from": snapshot.scope_fields(domain, parse_scope(decisive[0].scope)) if decisive else None,
        "candidates": candidates,
        "ceiling": {"detail": ceiling[0].detail, "origin": ceiling[0].origin} if ceiling else None,
        "why": decision.why,
        "sources": [source_fields(snapshot, domain, s) for s in decision.sources],
    }


def list_grants(
    request: Request,
    model_name: str | None = None,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(route_domain_admin),
    conn: Connection = Depends(connection),
    domain: str = Depends(route_domain),
) -> dict[str, Any]:
    rows = model_grants_page(conn, account_id, domain, model_name, at)
    scopes = scopes_in(list_snapshot(request, conn, account_id), domain)
    return paged_rows(rows, lambda found: [resource_json("model_grant", r, scopes) for r in found])


async def effective(
    request: Request,
    model_name: str | None = None,
    user_id: str | None = None,
    email: str | None = None,
    team_id: str | None = None,
    org_id: str | None = None,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(route_domain_admin),
    domain: str = Depends(route_domain),
) -> JSONResponse:
    """One model (`model_name`) or, without it, every model of the catalog and every model
    granted on the chain. The subject is a user by id or e-mail (membership expanded from
    the directory), else the given team and/or org, else the account."""
    snapshot = await account_snapshot(request, account_id)
    who = subject(snapshot, domain, user_id=user_id, email=email, team_id=team_id, org_id=org_id)
    graph = graph_for(snapshot, who)
    common = {**subject_fields(snapshot, who), "domain": domain, "resolution_order": resolution_order(snapshot, graph, who)}
    if model_name:
        return json_body({**decision_fields(snapshot, domain, model_access(graph, domain, who.name, model_name)), **common})
    decisions = effective_models(graph, domain, who.name)
    return json_body({
        **common,
        "allowed_models": [d.model for d in decisions if d.allowed],
        "items": [decision_fields(snapshot, domain, d) for d in at.slice(decisions)],
        "total": len(decisions),
    })


router.add_api_route("/v1/console/models/grants", list_grants, methods=["GET"], name="console_model_grants")
router.add_api_route("/v1/console/models/effective", effective, methods=["GET"], name="console_models_effective", responses=refusals(400, 404))
router.add_api_route("/v1/copilot/models/grants", list_grants, methods=["GET"], name="copilot_model_grants")
router.add_api_route("/v1/copilot/models/effective", effective, methods=["GET"], name="copilot_models_effective", responses=refusals(400, 404))
