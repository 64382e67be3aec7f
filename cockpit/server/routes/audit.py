"""The audit trail of the caller's account, newest first.

`cockpit apply` writes one event per change, with its domain (`iam`, `billing`, `console`,
`copilot`) in a column of its own, so the domain filter works (the old system filtered on a JSON
key and also on a column that did not exist). Events without an account (the global model
catalog) belong to no tenant and are never listed here.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.engine import Connection

from cockpit.resources.types import AUDIT_DOMAINS
from cockpit.runtime.context import RequestContext
from cockpit.server.deps import connection, context
from cockpit.server.guards import require_account_admin
from cockpit.server.reads import Moment, Page, no_nul, page, paged_rows, refusals
from cockpit.server.wire import row_json
from cockpit.store.queries.audit import AuditFilter, audit_page

router = APIRouter(tags=["audit"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))

DOMAIN_CHOICES = ("all", *sorted(AUDIT_DOMAINS))


@router.get("/v1/audit", responses=refusals(400))
def audit(
    domain: str = Query("all", description="all, iam, billing, console or copilot"),
    action: str | None = Query(None, description="create, update or delete"),
    kind: str | None = Query(None, description="A resource type, e.g. `agent`, `budget_allocation`."),
    actor: str | None = Query(None, description="Who applied the change."),
    plan_id: str | None = Query(None, description="The plan the change was applied from."),
    apply_run_id: str | None = Query(None, description="The apply run that made the change."),
    since: Moment | None = Query(None, description="Events at or after this time."),
    until: Moment | None = Query(None, description="Events before this time."),
    at: Page = Depends(page),
    ctx: RequestContext = Depends(context),
    db: Connection = Depends(connection),
) -> dict[str, Any]:
    """Account admin: the account's audit events, newest first; every filter narrows (AND)."""
    account_id: uuid.UUID = require_account_admin(ctx)
    if domain not in DOMAIN_CHOICES:
        raise HTTPException(400, f"domain must be one of: {','.join(DOMAIN_CHOICES)}")
    where = AuditFilter(
        domain=None if domain == "all" else domain, action=action, kind=kind, actor=actor, plan_id=plan_id,
        apply_run_id=apply_run_id, since=since, until=until,
    )
    return {"domain": domain, **paged_rows(audit_page(db, account_id, where, at), lambda rows: [row_json(r) for r in rows])}
