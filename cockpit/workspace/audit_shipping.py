"""Audit events sent outside the database (OpenObserve), when it is configured, catching up.

Every event starts unshipped (`audit_events.shipped_at` NULL). After each apply, and on
`cockpit audit ship`, the unshipped events (the run's own and any an earlier apply, a budget
renewal or an outage left behind) are sent oldest first, and those in batches OpenObserve
answered are marked shipped, in the database, right after. So an event that failed to ship
goes with the next run, once it gets through; records OpenObserve refuses for good (it
judged them) are not sent again. Delivery stays at least once: a batch whose answer was lost
to a timeout is sent again next time, under the same event ids.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from sqlalchemy.engine import Engine

from cockpit.audit import OpenObserveConfigError, OpenObserveSettings, ship
from cockpit.store.queries.audit import mark_shipped, unshipped_events
from cockpit.store.engine import write_transaction

MAX_EVENTS_PER_RUN = 20_000
"""A run ships at most this many (oldest first); the rest go with the next run."""


def record_of(event: Any) -> dict[str, Any]:
    """An audit row as OpenObserve gets it."""
    return {
        "id": str(event.id), "created_at": event.created_at.isoformat(), "account": event.account,
        "domain": event.domain, "actor": event.actor, "action": event.action, "kind": event.kind,
        "key": event.resource_key, "before": event.before, "after": event.after,
        "plan_id": event.plan_id, "run_id": str(event.apply_run_id) if event.apply_run_id else None, "commit": event.commit_sha,
        "origin": event.origin,
    }


def ship_audit(engine: Engine, environ: Mapping[str, str], written: int | None = None, after: str | None = "the apply succeeded") -> str | None:
    """Send the unshipped audit events to OpenObserve when it is configured; never raises for
    OpenObserve's sake, so an apply that committed succeeds. `written`: how many events the run
    itself wrote, to say how many are older; `after`: what succeeded anyway, for a warning.
    None when there is nothing to say (not configured, nothing waiting)."""
    try:
        settings = OpenObserveSettings.from_environment(environ)
    except OpenObserveConfigError as exc:
        return f"audit events not shipped: {exc}"
    if settings is None:
        return None
    with engine.connect() as connection:
        events = unshipped_events(connection, MAX_EVENTS_PER_RUN)
    if not events:
        return None
    result = ship([record_of(event) for event in events], settings)
    if result.answered:
        with write_transaction(engine) as connection:
            mark_shipped(connection, [event.id for event in events[: result.answered]], dt.datetime.now(dt.timezone.utc))
    if result.error:
        return f"warning: {after}, but {result.error}" if after else f"warning: {result.error}"
    earlier = len(events) - written if written is not None and len(events) > written else 0
    note = f" ({earlier} left unshipped by earlier runs)" if earlier else ""
    return f"{result.sent} audit event(s) shipped to OpenObserve{note}"
