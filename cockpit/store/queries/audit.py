"""Pages of an account's audit trail, newest first. Events without an account (the global
model catalog) belong to no tenant and are never read here."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.filters import as_uuid, window
from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import audit_events

events = audit_events.c


@dataclass(frozen=True)
class AuditFilter:
    """What narrows the trail; every filter given must match (AND)."""

    domain: str | None = None
    action: str | None = None
    kind: str | None = None
    actor: str | None = None
    plan_id: str | None = None
    apply_run_id: str | None = None
    """Not a UUID: matches nothing."""
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def audit_page(connection: Connection, account_id: uuid.UUID, where: AuditFilter, at: Page) -> RowPage:
    filters = [events.account_id == account_id]
    if where.domain is not None:
        filters.append(events.domain == where.domain)
    for value, column in ((where.action, events.action), (where.kind, events.kind), (where.actor, events.actor), (where.plan_id, events.plan_id)):
        if value:
            filters.append(column == value)
    if where.apply_run_id:
        run = as_uuid(where.apply_run_id)
        filters.append(events.apply_run_id == run if run else sa.false())
    filters.extend(window(events.created_at, where.since, where.until))
    query = (
        sa.select(
            events.id, events.account_id, events.domain, events.actor, events.action, events.kind,
            events.resource_key, events.before, events.after, events.plan_id, events.commit_sha,
            events.apply_run_id, events.created_at, events.origin,
        )
        .where(*filters)
        .order_by(events.created_at.desc(), events.id.desc())
    )
    return page_of(connection, query, at)
