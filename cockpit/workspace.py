"""A workspace's plan and apply: config + database → plan; plan → database.

This module wires the stages together (config, resources, store, plan, apply) so that each of
them stays ignorant of the others; the CLI calls only what is here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from cockpit.config.secrets import UnresolvedSecret, resolve_reference
from cockpit.config.semantics import role_key_conflicts
from cockpit.config.validate import ValidationResult, validate_path
from cockpit.memory import paused_gc
from cockpit.plan.compare import CATALOG, PlanContext, address_text, compare, diff_values, fingerprints
from cockpit.plan.model import Action, Plan
from cockpit.apply.journal import JournalOutcome, ordered
from cockpit.zitadel.desired import ReservedRoleKey, ZitadelPlan, compare_zitadel, desired_zitadel, people, platform_role_keys, project_target
from cockpit.policy.impact import access_impact
from cockpit.zitadel import ZitadelError, ZitadelSettings
from cockpit.zitadel.reader import read_zitadel
from cockpit.resources.desired import desired_state
from cockpit.resources.state import State
from cockpit.resources.types import ResourceType
from cockpit.store.reader import ActualState, read_actual
from cockpit.store.secrets import SecretBox
from cockpit.store.tables import accounts as accounts_table


class PlanFailed(Exception):
    """The config is invalid or conflicts with the database: nothing can be planned."""

    def __init__(self, messages: list[str], validation: ValidationResult | None = None) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages
        self.validation = validation


@dataclass(frozen=True)
class PlanInputs:
    config_path: Path
    workspace: str = "default"
    hard_delete_accounts: frozenset[str] = frozenset()
    skip_zitadel: bool = False


@dataclass
class Planned:
    plan: Plan
    desired: State
    actual: ActualState


def make_plan(engine: Engine, box: SecretBox, inputs: PlanInputs, environ: Mapping[str, str]) -> Planned:
    with paused_gc():
        try:
            return _make_plan(engine, box, inputs, environ)
        except OperationalError as exc:  # lost or refused mid-plan (a restart, a crash)
            raise PlanFailed([database_problem(exc, engine)]) from None


def database_problem(exc: OperationalError, engine: Engine) -> str:
    """One line naming what went wrong with the database, without its password."""
    from cockpit.store.engine import explain_connection_error

    reason = explain_connection_error(exc, engine.url)
    lost = exc.connection_invalidated or "connect" in reason.lower()  # dropped, refused, timed out
    return f"Database not connected: {reason}" if lost else f"Database error: {reason}"


def _make_plan(engine: Engine, box: SecretBox, inputs: PlanInputs, environ: Mapping[str, str]) -> Planned:
    validation = validate_path(inputs.config_path)
    if not validation.ok:
        raise PlanFailed([str(d) for d in validation.diagnostics if d.severity == "error"], validation)
    errors: list[str] = []

    def fingerprint(resource_type: ResourceType, refs: dict[str, str], base: str, origins: Mapping[str, str]) -> str | None:
        values = {}
        for name, reference in refs.items():
            try:
                values[name] = resolve_reference(reference, Path(base), environ)
            except UnresolvedSecret as exc:
                errors.append(f"{origins[name]}: error: '{name}' of {resource_type.display}: {exc}")
        return box.fingerprint(values) if len(values) == len(refs) else None

    desired = desired_state(validation.tenant, fingerprint)
    with engine.connect() as connection:
        actual = read_actual(connection, inputs.workspace)
        errors.extend(_zitadel_key_errors(validation, connection, inputs.hard_delete_accounts))
    errors.extend(_ownership_errors(validation, actual, inputs))
    if errors:
        raise PlanFailed(errors, validation)
    context = PlanContext(
        workspace=inputs.workspace,
        config_accounts=frozenset(validation.tenant.accounts),
        hard_delete_accounts=inputs.hard_delete_accounts,
        warnings=tuple(str(d) for d in validation.diagnostics if d.severity == "warning"),
        config_path=str(inputs.config_path.resolve()),
    )
    plan = compare(desired, actual.state, context)
    impact = access_impact(actual.state, _state_after(desired, actual.state, context))
    zitadel = plan_zitadel(desired, actual.state, environ, skip=inputs.skip_zitadel)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    plan = replace(
        plan, access_impact=impact, zitadel=zitadel, plan_id=str(uuid.uuid4()),
        created_at=now.isoformat().replace("+00:00", "Z"),
    )
    return Planned(plan, desired, actual)


def diff_fields(before: Mapping, after: Mapping):
    for name in sorted(set(before) | set(after)):
        yield from diff_values((name,), before.get(name), after.get(name))


def plan_zitadel(desired: State, actual: State, environ: Mapping[str, str], *, skip: bool = False) -> ZitadelPlan:
    """The Zitadel section: per account with a `zitadel.project_id`, roles and grants to change.

    An account the config dropped keeps its Zitadel grants (it is suspended, not deleted)."""
    accounts = sorted(a for a in desired.accounts() if project_target(desired, a) is not None)
    if not accounts:
        return ZitadelPlan()
    if skip:
        return ZitadelPlan(note="Zitadel skipped (--skip-zitadel): its roles and grants are not in this plan")
    try:
        settings = ZitadelSettings.from_environment(environ)
    except ZitadelError as exc:
        raise PlanFailed([f"error: {exc}"]) from None
    if settings is None:
        return ZitadelPlan(note=(
            f"Zitadel is not configured, so {len(accounts)} account(s) with a zitadel.project_id were "
            "planned for the database only; set ZITADEL_ISSUER_URL and ZITADEL_MGMT_API_TOKEN (or "
            "ZITADEL_CLIENT_ID and ZITADEL_CLIENT_SECRET) to include Zitadel"
        ))
    changes, warnings, prints = [], [], {}
    for account in accounts:
        wanted = desired_zitadel(desired, account)
        assert wanted is not None
        former = set(people(actual, account, wanted.target))
        try:
            with settings.client(account_issuer=wanted.target.issuer, org_id=wanted.target.organization_id) as client:
                current = read_zitadel(client, wanted.target, set(wanted.grants) | former)
        except ZitadelError as exc:
            raise PlanFailed([f"error: Zitadel, account '{account}': {exc}; fix it, or plan the database alone with --skip-zitadel"]) from None
        try:
            account_changes, account_warnings = compare_zitadel(wanted, current, former, platform_role_keys(environ))
        except ReservedRoleKey as exc:  # validation was bypassed: refuse, never plan the step
            raise PlanFailed([f"error: {exc}"]) from None
        changes.extend(account_changes)
        warnings.extend(account_warnings)
        prints[f"zitadel:{account}"] = current.fingerprint()
    return ZitadelPlan(tuple(ordered(tuple(changes))), tuple(warnings), prints)


def _state_after(desired: State, actual: State, context: PlanContext) -> State:
    """What the database will hold after the apply: the desired state, plus the resources of
    accounts the config dropped, which are suspended rather than deleted."""
    after = State(dict(desired.resources))
    for resource in actual:
        account = resource.account
        if account and account not in context.config_accounts and account not in context.hard_delete_accounts:
            after.add(resource)
    return after


def _zitadel_key_errors(validation: ValidationResult, connection: Connection, deleted: frozenset[str]) -> list[str]:
    """Role keys the config's accounts share with an account of the database it does not
    declare (another workspace's, or one it dropped, which keeps its grants unless hard-deleted)
    in the same Zitadel project: validate checks the same within the config
    (`role_key_conflicts`)."""
    if not any(d.model.zitadel and d.model.zitadel.project_id for d in validation.tenant.accounts.values()):
        return []
    table = accounts_table.c
    rows = connection.execute(sa.select(table.name, table.workspace, table.zitadel)).all()
    errors = []
    for row in rows:
        settings = row.zitadel or {}
        mappings = settings.get("role_mappings") if isinstance(settings, dict) else None
        if row.name in validation.tenant.accounts or row.name in deleted or not isinstance(settings, dict):
            continue
        for declared in validation.tenant.accounts.values():
            zitadel = declared.model.zitadel
            if zitadel is None or not zitadel.project_id or str(settings.get("project_id") or "") != zitadel.project_id:
                continue
            where = f"the database, workspace '{row.workspace}'"
            for location, message in role_key_conflicts(declared, row.name, str(settings.get("role_prefix") or ""), mappings if isinstance(mappings, dict) else {}, where):
                errors.append(f"{location}: error: {message}")
    return errors


def _ownership_errors(validation: ValidationResult, actual: ActualState, inputs: PlanInputs) -> list[str]:
    """Claiming another workspace's account or model, or an email domain already taken."""
    errors = []
    tenant = validation.tenant
    for name, declared in tenant.accounts.items():
        row = actual.accounts.get(name)
        where = declared.at("name")
        if row is not None and row.workspace != inputs.workspace:
            errors.append(
                f"{where}: error: account '{name}' is managed by workspace '{row.workspace}'; "
                f"it cannot be claimed from workspace '{inputs.workspace}'"
            )
        domain = declared.model.email_domain
        if domain:
            for other in actual.accounts.values():
                if other.email_domain == domain and other.name != name and other.name not in tenant.accounts:
                    errors.append(
                        f"{declared.at('email_domain')}: error: email_domain '{domain}' already "
                        f"belongs to account '{other.name}' (workspace '{other.workspace}')"
                    )
    for name in inputs.hard_delete_accounts:
        row = actual.accounts.get(name)
        if row is None or row.workspace != inputs.workspace:
            errors.append(f"error: --hard-delete-accounts {name}: no such account in workspace '{inputs.workspace}'")
        elif name in tenant.accounts:
            errors.append(f"error: --hard-delete-accounts {name}: the config still declares it; remove it from the config first")
    for name, declared in tenant.catalog.items():
        owner = actual.foreign_models.get(name)
        if owner is not None:
            errors.append(
                f"{declared.at('name')}: error: model '{name}' belongs to workspace '{owner}'; "
                "the catalog is owned by the config that declares it"
            )
    return errors


def stale_accounts(plan: Plan, actual: State) -> list[str]:
    """What changed in the database since the plan was made, per account, in a few words:
    first the resources the plan itself touches and finds different, else a count."""
    now = fingerprints(actual)
    touched = {c.account or CATALOG for c in plan.changes} | set(plan.fingerprints)
    stale = []
    for account in sorted(touched):
        if plan.fingerprints.get(account) == now.get(account):
            continue
        moved = []
        for change in plan.changes:
            if (change.account or CATALOG) != account:
                continue
            current = actual.get(change.address)
            if change.action is Action.CREATE and current is not None:
                moved.append(f"{address_text(change.address)} now exists")
            elif change.action is not Action.CREATE and current is None:
                moved.append(f"{address_text(change.address)} was deleted")
            elif change.action is not Action.CREATE and dict(current.fields) != dict(change.before or {}):
                fields = ", ".join(f.dotted for f in diff_fields(change.before or {}, current.fields))
                moved.append(f"{address_text(change.address)} changed ({fields})")
        detail = "; ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
        stale.append(f"account {account} changed since the plan" + (f": {detail}" if detail else " (resources this plan does not touch)"))
    return stale


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
    progress=None,
    zitadel_now: Callable[[], Mapping[str, str]] | None = None,
) -> ApplyOutcome:
    """Apply a plan in one transaction under per-account locks, then ship its audit events."""
    from cockpit.apply.executor import ApplyError, RunInfo, execute
    from cockpit.apply.journal import record_steps, run_journal
    from cockpit.store.locks import LockTimeout, lock_accounts
    from cockpit.store.runs import record_run_end, record_run_start

    check_applicable(plan, options)
    if not plan.has_changes:
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
                    now = zitadel_now()
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
    shipping = ship_audit(events, plan, environ)
    journal = run_journal(engine, ZitadelSettings.from_environment(environ)) if plan.zitadel.changes else JournalOutcome()
    return ApplyOutcome(len(events), shipping, journal)


def ship_audit(events: list[dict], plan: Plan, environ: Mapping[str, str]) -> str | None:
    """Send the run's audit events to OpenObserve when it is configured; never fails the apply."""
    from cockpit.audit import OpenObserveConfigError, OpenObserveSettings, ship

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
        }
        for e in events
    ]
    result = ship(records, settings)
    if result.error:
        return f"warning: the apply succeeded, but {result.error}"
    return f"{result.sent} audit event(s) shipped to OpenObserve"

