"""The audit trail of the caller's account (seed-behaviour.md §13), newest first.

`cockpit apply` writes one event per change, with its domain (`iam`, `billing`, `console`,
`copilot`) in a column of its own, so the domain filter works (the old system filtered on a JSON
key and also on a column that did not exist). Events without an account (the global model
catalog) belong to no tenant and are never listed here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.engine import Connection

from cockpit.budgets.usage import UTC
from cockpit.resources.types import AUDIT_DOMAINS
from cockpit.runtime.context import RequestContext
from cockpit.server.deps import connection, context
from cockpit.server.guards import require_account_admin
from cockpit.server.reads import Moment, Page, as_uuid, page, paged_query, plain, no_nul, refusals
from cockpit.store.tables import audit_events

router = APIRouter(tags=["audit"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))

DOMAIN_CHOICES = ("all", *sorted(AUDIT_DOMAINS))


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
    events = audit_events.c
    filters = [events.account_id == account_id]
    if domain != "all":
        filters.append(events.domain == domain)
    for value, column in ((action, events.action), (kind, events.kind), (actor, events.actor), (plan_id, events.plan_id)):
        if value:
            filters.append(column == value)
    if apply_run_id:
        run = as_uuid(apply_run_id)
        filters.append(events.apply_run_id == run if run else sa.false())
    if since is not None:
        filters.append(events.created_at >= _aware(since))
    if until is not None:
        filters.append(events.created_at < _aware(until))
    query = (
        sa.select(
            events.id, events.account_id, events.domain, events.actor, events.action, events.kind,
            events.resource_key, events.before, events.after, events.plan_id, events.commit_sha,
            events.apply_run_id, events.created_at,
        )
        .where(*filters)
        .order_by(events.created_at.desc(), events.id.desc())
    )
    result = paged_query(db, query, at, lambda rows: [{k: plain(v) for k, v in r._mapping.items()} for r in rows])
    return {"domain": domain, **result}
