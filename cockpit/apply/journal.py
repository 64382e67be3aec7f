"""The Zitadel phase of an apply, run from a journal in the database.

The steps are written in the same transaction as the database changes, so they commit or
vanish together. After the commit each step runs against Zitadel and is marked done (with what
Zitadel returned) or failed, one short transaction per step. A killed or failed apply leaves
its pending and failed steps behind; the next apply runs them before anything else. Every step
is idempotent: adding what exists, updating to what is there, removing what is gone all succeed.

A Zitadel that stays unavailable (429, 5xx, timeouts, refused connections after every retry)
is given up on for the rest of the run after its first such step: the steps after it stay
pending for the next apply instead of each waiting out its own retries.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from cockpit.zitadel.desired import ReservedRoleKey, ZitadelAction, ZitadelChange, ordered
from cockpit.store.tables import metadata
from cockpit.zitadel import (
    ProjectRole,
    ZitadelClient,
    ZitadelError,
    ZitadelRateLimited,
    ZitadelSettings,
    ZitadelUnavailable,
)


@dataclass(frozen=True)
class JournalOutcome:
    done: int = 0
    failed: int = 0
    errors: tuple[str, ...] = ()


def record_steps(connection: Connection, run_id: uuid.UUID, changes: tuple[ZitadelChange, ...]) -> int:
    """Write the run's Zitadel steps as pending, inside the apply's transaction."""
    rows = [
        {"id": uuid.uuid4(), "run_id": run_id, "seq": seq, "step_type": change.action.value, "payload": change.as_dict(), "status": "pending"}
        for seq, change in enumerate(ordered(changes))
    ]
    if rows:
        connection.execute(metadata.tables["apply_journal"].insert(), rows)
    return len(rows)


def pending_steps(engine: Engine) -> int:
    journal = metadata.tables["apply_journal"]
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).where(journal.c.status != "done")).scalar_one()


def run_journal(
    engine: Engine,
    settings: ZitadelSettings | None,
    client_for: Callable[[ZitadelChange], ZitadelClient] | None = None,
) -> JournalOutcome:
    """Run every step not yet done, oldest run first; never raises for a Zitadel failure."""
    journal, runs = metadata.tables["apply_journal"], metadata.tables["apply_runs"]
    with engine.connect() as connection:
        steps = connection.execute(
            sa.select(journal.c.id, journal.c.payload)
            .join(runs, runs.c.id == journal.c.run_id)
            .where(journal.c.status != "done")
            .order_by(runs.c.started_at, journal.c.seq)
        ).all()
    if not steps:
        return JournalOutcome()
    if settings is None and client_for is None:
        return JournalOutcome(failed=len(steps), errors=(f"{len(steps)} Zitadel step(s) are waiting in the journal but Zitadel is not configured (ZITADEL_ISSUER_URL and a token or client credentials)",))
    clients: dict[tuple[str | None, str | None], ZitadelClient] = {}

    def default_client(change: ZitadelChange) -> ZitadelClient:
        key = (change.issuer, change.organization_id)
        if key not in clients:
            clients[key] = settings.client(account_issuer=change.issuer, org_id=change.organization_id)  # type: ignore[union-attr]
        return clients[key]

    done, failed, errors = 0, 0, []
    blocked: set[str] = set()
    unavailable: dict[str | None, int] = {}  # issuer → steps not tried since it went away
    try:
        for position, (step_id, payload) in enumerate(steps):
            try:
                change = ZitadelChange.from_dict(payload)
            except ReservedRoleKey as exc:  # a journal row edited to touch a platform role
                _mark(engine, step_id, "failed", error=str(exc))
                errors.append(f"refused: {exc}")
                failed += 1
                continue
            if change.issuer in unavailable:
                unavailable[change.issuer] += 1
                failed += 1
                continue
            if change.project_id in blocked and change.action in (ZitadelAction.ADD_GRANT, ZitadelAction.UPDATE_GRANT):
                errors.append(f"{change.account}: {change.action.value.replace('_', ' ')} {change.subject}: not run, a role of project {change.project_id} is missing")
                failed += 1
                continue
            try:
                result = _with_retries(lambda: run_step((client_for or default_client)(change), change))
            except ZitadelError as exc:
                _mark(engine, step_id, "failed", error=str(exc))
                errors.append(f"{change.account}: {change.action.value.replace('_', ' ')} {change.subject}: {exc}")
                failed += 1
                if isinstance(exc, (ZitadelUnavailable, ZitadelRateLimited)):
                    unavailable[change.issuer] = 0
                if change.action in (ZitadelAction.ADD_ROLE, ZitadelAction.UPDATE_ROLE):
                    blocked.add(change.project_id)
                continue
            _mark(engine, step_id, "done", result=result)
            done += 1
    except OperationalError as exc:  # the database went away while the steps were recorded
        from cockpit.store.engine import explain_connection_error

        left = len(steps) - position
        errors.append(
            f"Database not connected: {explain_connection_error(exc, engine.url)}; {left} Zitadel "
            "step(s) are not recorded as done and stay in the journal: the next apply runs them "
            "(again, which is safe: steps are idempotent)"
        )
        failed += left
    finally:
        for client in clients.values():
            client.close()
    for issuer, skipped in unavailable.items():
        if skipped:
            where = issuer or "the configured Zitadel (ZITADEL_ISSUER_URL)"
            errors.append(f"{skipped} more step(s) for {where} not tried: it kept failing, so they wait in the journal for the next apply")
    return JournalOutcome(done, failed, tuple(errors))


STEP_ATTEMPTS = 3


def _with_retries(step: Callable[[], str], sleep: Callable[[float], None] = time.sleep) -> str:
    """Steps are idempotent, so a step the client gave up on (Zitadel busy or failing) is tried
    again a few times before it is left to the next apply; a refusal (4xx) is not retried."""
    for attempt in range(STEP_ATTEMPTS):
        try:
            return step()
        except (ZitadelUnavailable, ZitadelRateLimited):
            if attempt == STEP_ATTEMPTS - 1:
                raise
            sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def run_step(client: ZitadelClient, change: ZitadelChange) -> str:
    """One idempotent step; returns what Zitadel said (an id, or created/exists/gone)."""
    project = change.project_id
    if change.action is ZitadelAction.ADD_ROLE:
        name, group = change.after
        return "created" if client.add_project_role(project, ProjectRole(change.subject, name, group)) else "exists"
    if change.action is ZitadelAction.UPDATE_ROLE:
        name, group = change.after
        client.update_project_role(project, ProjectRole(change.subject, name, group))
        return "updated"
    if change.action is ZitadelAction.REMOVE_ROLE:
        return "removed" if client.remove_project_role(project, change.subject) else "gone"
    if change.action is ZitadelAction.ADD_GRANT:
        return client.add_user_grant(change.user_id, project, change.after)
    if change.action is ZitadelAction.UPDATE_GRANT:
        client.update_user_grant(change.user_id, change.grant_id, change.after, project_id=project)
        return change.grant_id or "updated"
    return "removed" if client.remove_user_grant(change.user_id, change.grant_id, project_id=project) else "gone"


def _mark(engine: Engine, step_id: uuid.UUID, status: str, *, result: str | None = None, error: str | None = None) -> None:
    journal = metadata.tables["apply_journal"]
    with engine.begin() as connection:
        connection.execute(
            journal.update()
            .where(journal.c.id == step_id)
            .values(status=status, result_ref=result, error=error[:2000] if error else None, attempts=journal.c.attempts + 1, updated_at=dt.datetime.now(dt.timezone.utc))
        )


