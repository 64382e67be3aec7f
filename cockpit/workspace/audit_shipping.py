"""An apply's audit events sent outside the database (OpenObserve), when it is configured."""

from __future__ import annotations

from typing import Mapping

from cockpit.audit import OpenObserveConfigError, OpenObserveSettings, ship
from cockpit.plan.model import Plan


def ship_audit(events: list[dict], plan: Plan, environ: Mapping[str, str]) -> str | None:
    """Send the run's audit events to OpenObserve when it is configured; never fails the apply."""
    try:
        settings = OpenObserveSettings.from_environment(environ)
    except OpenObserveConfigError as exc:
        return f"audit events not shipped: {exc}"
    if settings is None or not events:
        return None
    records = [
        {
            "id": str(e["id"]), "created_at": e["created_at"].isoformat(), "account": e["account"],
            "domain": e["domain"], "actor": e["actor"], "action": e["action"], "kind": e["kind"],
            "key": e["resource_key"], "before": e["before"], "after": e["after"],
            "plan_id": e["plan_id"], "run_id": str(e["apply_run_id"]), "commit": e["commit_sha"],
            "origin": e.get("origin"),
        }
        for e in events
    ]
    result = ship(records, settings)
    if result.error:
        return f"warning: the apply succeeded, but {result.error}"
    return f"{result.sent} audit event(s) shipped to OpenObserve"

