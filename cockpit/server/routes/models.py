"""Model grants and effective model access, per domain (seed-behaviour §10; DESIGN.md Semantics).

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

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from cockpit.policy.model_access import ModelDecision, effective_models, model_access
from cockpit.server.deps import connection
from cockpit.server.reads import DOMAINS, Page, ScopeIds, domain_admin, json_body, page, paged_query, plain, no_nul, refusals
from cockpit.runtime.snapshots import AccountSnapshot, account_snapshot
from cockpit.server.subjects import graph_for, parse_scope, resolution_order, source_fields, subject, subject_fields
from cockpit.store.tables import model_grants

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


def _add_routes(domain: str) -> None:
    admin = domain_admin(domain)

    @router.get(f"/v1/{domain}/models/grants", name=f"{domain}_model_grants")
    def list_grants(
        model_name: str | None = None,
        at: Page = Depends(page),
        account_id: uuid.UUID = Depends(admin),
        conn: Connection = Depends(connection),
    ) -> dict[str, Any]:
        query = (
            sa.select(model_grants)
            .where(model_grants.c.account_id == account_id, model_grants.c.domain == domain)
            .order_by(model_grants.c.created_at.desc(), model_grants.c.model_name, model_grants.c.scope_type, model_grants.c.scope_key)
        )
        if model_name:
            query = query.where(model_grants.c.model_name == model_name)

        def rows_json(rows: list[Any]) -> list[dict[str, Any]]:
            scopes = ScopeIds(conn, account_id)
            for row in rows:
                scopes.want(domain, row.scope_type, row.scope_key)
            scopes.resolve()
            return [
                {
                    "id": str(row.id),
                    "account_id": str(row.account_id),
                    "domain": row.domain,
                    "model_name": row.model_name,
                    **scopes.fields(domain, row.scope_type, row.scope_key),
                    "access_mode": row.access,
                    "created_at": plain(row.created_at),
                    "updated_at": plain(row.updated_at),
                }
                for row in rows
            ]

        return paged_query(conn, query, at, rows_json)

    @router.get(f"/v1/{domain}/models/effective", name=f"{domain}_models_effective", responses=refusals(400, 404))
    async def effective(
        request: Request,
        model_name: str | None = None,
        user_id: str | None = None,
        email: str | None = None,
        team_id: str | None = None,
        org_id: str | None = None,
        at: Page = Depends(page),
        account_id: uuid.UUID = Depends(admin),
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


for _domain in DOMAINS:
    _add_routes(_domain)
