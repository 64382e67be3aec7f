"""A plan applied: refused when it may not be, then written in one transaction under
per-account locks, its Zitadel steps journaled with it, its audit events shipped after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from cockpit.apply.executor import ApplyError, Progress, RunInfo, execute
from cockpit.apply.journal import JournalOutcome, record_steps, run_journal
from cockpit.memory import paused_gc
from cockpit.plan.compare import CATALOG
from cockpit.plan.draft import PlanFailed
from cockpit.plan.model import Plan
from cockpit.resources.state import State
from cockpit.store.locks import LockTimeout, lock_accounts
from cockpit.store.reader import read_actual
from cockpit.store.runs import record_run_end, record_run_start
from cockpit.store.secrets import SecretBox
from cockpit.workspace.audit_shipping import ship_audit
from cockpit.workspace.database import database_problem
from cockpit.workspace.staleness import stale_accounts
from cockpit.zitadel import ZitadelSettings


class ApplyRefused(Exception):
    """The plan may not be applied as asked (deletes without --allow-delete, protected resources)."""


class StalePlan(Exception):
    """The database changed since the saved plan was made."""


@dataclass(frozen=True)
class ApplyOptions:
    allow_delete: bool = False
    actor: str = "unknown"
    commit_sha: str | None = None
    lock_timeout: float = 30.0


def check_applicable(plan: Plan, options: ApplyOptions) -> None:
    protected = [c for c in plan.deletes if c.protect]
    if protected:
        names = ", ".join(f"{c.type} {c.account + '/' if c.account else ''}{c.label}" for c in protected[:5])
        raise ApplyRefused(
            f"the plan deletes {len(protected)} protected resource(s) ({names}); protected resources "
            "are never deleted: set protect: false in the config first, apply, then remove them"
        )
    if plan.has_deletes and not options.allow_delete:
        raise ApplyRefused(
            f"the plan deletes {len(plan.deletes)} resource(s) and revokes {len(plan.revocations)} "
            "access(es); review the plan and re-run with --allow-delete to apply it"
        )


@dataclass(frozen=True)
class ApplyOutcome:
    written: int
    shipping: str | None = None
    """What happened to the audit events outside the database (OpenObserve), for people."""
    zitadel: JournalOutcome = JournalOutcome()


def apply_plan(
    engine: Engine,
    box: SecretBox,
    plan: Plan,
    options: ApplyOptions,
    environ: Mapping[str, str],
    progress: Progress | None = None,
    zitadel_now: Callable[[State], Mapping[str, str]] | None = None,
) -> ApplyOutcome:
    """Apply a plan in one transaction under per-account locks, then ship its audit events.

    `zitadel_now` (for a saved plan): Zitadel's fingerprints now, given the database's state
    read under the locks; a plan whose Zitadel moved is stale."""
    check_applicable(plan, options)
    if not plan.has_changes and not plan.origins:
        return ApplyOutcome(0)
    accounts = sorted({c.account or CATALOG for c in plan.changes} | {c.account for c in plan.zitadel.changes} | set(plan.fingerprints))
    run_id = record_run_start(
        engine, workspace=plan.workspace, actor=options.actor, commit_sha=options.commit_sha,
        plan_id=plan.plan_id, accounts=accounts, timeout=options.lock_timeout,
    )
    run = RunInfo(run_id, plan.plan_id, options.actor, options.commit_sha, plan.workspace)
    committing = False
    try:
        with paused_gc(), engine.begin() as connection:
            lock_accounts(connection, accounts, timeout=options.lock_timeout, run_id=run_id)
            actual = read_actual(connection, plan.workspace)
            stale = stale_accounts(plan, actual.state)
            if zitadel_now is not None and plan.zitadel.fingerprints:
                try:
                    now = zitadel_now(actual.state)
                except PlanFailed as exc:
                    raise ApplyError(
                        "cannot check the saved plan against Zitadel: " + "; ".join(exc.messages[:3])
                        + ". Nothing was applied; apply the plan again when Zitadel answers"
                    ) from None
                stale += [f"Zitadel of account {k.split(':', 1)[1]} changed since the plan" for k, v in plan.zitadel.fingerprints.items() if now.get(k) != v]
            if stale:
                raise StalePlan("saved plan is stale: " + "; ".join(stale) + ". Make a new plan.")
            events = execute(connection, plan, actual, box, run, environ, progress)
            record_steps(connection, run_id, plan.zitadel.changes)
            committing = True
    except BaseException as exc:
        try:
            record_run_end(engine, run_id, "failed", error=str(exc)[:2000])
        except (LockTimeout, SQLAlchemyError):
            pass  # SQLite held by another apply, or the database is gone: waiters skip runs whose process is gone
        if isinstance(exc, OperationalError):
            problem = database_problem(exc, engine)
            if committing:
                raise ApplyError(
                    f"{problem}; the connection was lost while committing, so this apply may or "
                    "may not be in the database: run `cockpit plan` to see, and `cockpit apply` to finish"
                ) from None
            raise ApplyError(f"{problem}; nothing of this apply was written (its transaction was rolled back); run `cockpit apply` again") from None
        raise
    try:
        record_run_end(engine, run_id, "succeeded")
    except OperationalError as exc:
        raise ApplyError(
            f"{database_problem(exc, engine)}; the apply committed, but the connection was lost "
            "right after: its audit events are in the database but not shipped, and any Zitadel "
            "steps wait in the journal for the next `cockpit apply`"
        ) from None
    shipping = ship_audit(engine, environ, written=len(events))
    journal = run_journal(engine, ZitadelSettings.from_environment(environ)) if plan.zitadel.changes else JournalOutcome()
    return ApplyOutcome(len(events), shipping, journal)
