"""Pages of an account's audit trail, newest first. Events without an account (the global
model catalog) belong to no tenant and are never read here, except by shipping: the events not
yet sent to OpenObserve, whatever their account, and marking them sent."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.filters import as_uuid, window
from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import accounts, audit_events

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


def unshipped_events(connection: Connection, limit: int) -> list[Any]:
    """Audit events not yet shipped to OpenObserve, oldest first, with their account's name
    (None for the catalog's, and for an account deleted since)."""
    return connection.execute(
        sa.select(
            events.id, accounts.c.name.label("account"), events.domain, events.actor, events.action, events.kind,
            events.resource_key, events.before, events.after, events.plan_id, events.commit_sha,
            events.apply_run_id, events.created_at, events.origin,
        )
        .select_from(audit_events.outerjoin(accounts, accounts.c.id == events.account_id))
        .where(events.shipped_at.is_(None))
        .order_by(events.created_at, events.id)
        .limit(limit)
    ).all()


def mark_shipped(connection: Connection, ids: list[uuid.UUID], at: dt.datetime) -> None:
    """Record that these events reached OpenObserve (in chunks: bound parameters are limited)."""
    for start in range(0, len(ids), 1000):
        connection.execute(sa.update(audit_events).where(events.id.in_(ids[start : start + 1000])).values(shipped_at=at))
