"""Budgets and costs, read-only, at the old system's paths.

The numbers are Cockpit's, not the old system's: a scope's effective allocation is
its allocation or equal share replaced by its override; usage counts the ledger rows of the
current cycle window (the calendar month or quarter, UTC, of the plan's `cycle`), rolled up by
the org, team and user written on each row (`cockpit.budgets.usage`). Scopes are named by
their row id (`scope_id`, as the old API did) and by their natural key (`scope_key`, `scope`).
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy.engine import Connection

from cockpit.budgets.usage import current_window, scope_usage
from cockpit.policy.allocations import PlanAllocation, ScopeAllocation, effective_allocation
from cockpit.credits import to_cents
from cockpit.config.scopes import parse_scope
from cockpit.runtime.context import RequestContext
from cockpit.server.deps import connection, context
from cockpit.server.guards import require_account, require_domain_admin, require_super_admin
from cockpit.runtime.scopes import scope_key
from cockpit.runtime.snapshots import AccountSnapshot, snapshot_cache
from cockpit.server.reads import Moment, Page, item, list_snapshot, no_nul, page, paged, paged_rows, refusals, require_domain
from cockpit.server.wire import plain, row_json
from cockpit.store.queries import accounts as account_reads
from cockpit.store.queries import budgets as budget_reads
from cockpit.store.queries import ledger
from cockpit.store.queries.filters import as_uuid

router = APIRouter(tags=["budgets"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))

BREAKDOWNS = {"agent": "agent_name", "llm": "model_name", "connection": "connection_name", "guardrail": "guardrail_code"}
"""`by` of the copilot cost breakdown → the ledger column it groups on."""


def copilot_admin(ctx: RequestContext = Depends(context)) -> uuid.UUID:
    return require_domain_admin(ctx, "copilot")


# -- account allocation --------------------------------------------------------------------------

@router.get("/v1/budgets/account-allocation", responses=refusals(404))
def account_allocation(
    account_id: str | None = Query(None, description="An account's id or name; without it, every account."),
    at: Page = Depends(page),
    ctx: RequestContext = Depends(context),
    db: Connection = Depends(connection),
) -> dict[str, Any]:
    """Super admin: one account's credits (`item`), or every account's, newest change first."""
    require_super_admin(ctx)
    if account_id:
        row = account_reads.allocation_by_ref(db, account_id)
        if row is None:
            raise HTTPException(404, "Account not found")
        return item(row_json(row))
    return paged_rows(account_reads.allocations_page(db, at), lambda rows: [row_json(r) for r in rows])


@router.get("/v1/budgets/copilot/account-allocation")
def copilot_account_allocation(account_id: uuid.UUID = Depends(copilot_admin), db: Connection = Depends(connection)) -> dict[str, Any]:
    """The caller's account: monthly credits, overflow limit, credit factor."""
    row = account_reads.allocation_of(db, account_id)
    if row is None:
        return item({"account_id": str(account_id), "monthly_credits": 0.0, "overflow_limit": 0.0, "credit_factor": 1.0})
    return item(row_json(row))


# -- plans and effective allocation -------------------------------------------------------------

def _plan_item(db: Connection, row: Any) -> dict[str, Any]:
    fields = row_json(row)
    fields["status"] = "active" if row.active else "inactive"
    fields["window"] = current_window(db, row.account_id, row.cycle).as_dict()
    return fields


@router.get("/v1/budgets/copilot/plans/active")
def active_plan(account_id: uuid.UUID = Depends(copilot_admin), db: Connection = Depends(connection)) -> dict[str, Any]:
    """The active plan (null when none), with the cycle window usage counts in."""
    row = budget_reads.active_plan(db, account_id)
    return item(_plan_item(db, row) if row is not None else None)


def _snapshot(request: Request, db: Connection, account_id: uuid.UUID) -> AccountSnapshot:
    return snapshot_cache(request).get(db, account_id)


def _chosen_plan(snapshot: AccountSnapshot, plan_id: str | None) -> str | None:
    """The plan named by `plan_id` (its row id or its name), else the active plan; 404 for a
    plan this account does not have."""
    graph = snapshot.graph
    if not plan_id:
        return graph.active_plan()
    by_id = as_uuid(plan_id)
    if by_id is not None:
        address = snapshot.by_id.get(by_id)
        if address is not None and address[0] == "budget_plan" and address[1] == snapshot.name:
            return address[2][0]
    elif plan_id in graph.budget_plans:
        return plan_id
    raise HTTPException(404, "Budget plan not found")


def _no_plan(account_id: uuid.UUID) -> dict[str, Any]:
    return {"plan_id": None, "plan_name": None, "account_id": str(account_id), "items": [], "total": 0}


def _plan_head(snapshot: AccountSnapshot, allocation: PlanAllocation) -> dict[str, Any]:
    return {
        "plan_id": snapshot.row_id("budget_plan", (allocation.plan,)),
        "plan_name": allocation.plan,
        "account_id": str(snapshot.account_id),
        "cycle": allocation.cycle,
        "active": allocation.active,
        "allow_overflow": allocation.allow_overflow,
        "monthly_credits": allocation.monthly_credits,
        "overflow_limit": allocation.overflow_limit,
        "credit_factor": allocation.credit_factor,
        "distributed": allocation.distributed,
        "unallocated": allocation.unallocated,
    }


def _scope_fields(snapshot: AccountSnapshot, scope: ScopeAllocation) -> dict[str, Any]:
    return snapshot.scope_fields("copilot", parse_scope(scope.scope))


@router.get("/v1/budgets/copilot/effective-allocation", responses=refusals(404))
def effective(
    request: Request,
    plan_id: str | None = Query(None, description="The plan's id or name; default: the active plan."),
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    db: Connection = Depends(connection),
) -> dict[str, Any]:
    """Every scope of the plan with its effective allocation: the allocation or equal share,
    replaced by the override when there is one. `distributed` sums the top level (orgs,
    unnested teams and users, pool), which is what must fit in `monthly_credits`."""
    snapshot = _snapshot(request, db, account_id)
    plan = _chosen_plan(snapshot, plan_id)
    allocation = effective_allocation(snapshot.graph, plan) if plan else None
    if allocation is None:
        return _no_plan(account_id)
    items = [
        {
            **_scope_fields(snapshot, s),
            "base_allocated": s.base_credits,
            "effective_allocated": s.credits,
            "override_applied": s.override,
            "overflow_cap": s.overflow_cap,
            "source": s.source,
            "reason": s.reason,
            "inside": list(s.inside),
            "why": s.why,
        }
        for s in allocation.scopes
    ]
    return paged(items, at, **_plan_head(snapshot, allocation))


# -- usage and alerts ------------------------------------------------------------------------------

def _usage(request: Request, db: Connection, account_id: uuid.UUID, plan_id: str | None) -> dict[str, Any] | None:
    """Usage of every allocated scope of the plan in its current cycle window, or None when
    there is no plan."""
    snapshot = _snapshot(request, db, account_id)
    plan = _chosen_plan(snapshot, plan_id)
    if plan is None:
        return None
    graph = snapshot.graph
    window = current_window(db, account_id, graph.budget_plans[plan].fields.get("cycle"))
    used = scope_usage(db, account_id, window, set(graph.allocations.get(plan, {})))
    allocation = effective_allocation(graph, plan)
    assert allocation is not None
    items = [_usage_item(snapshot, s, used) for s in allocation.scopes]
    account_limit = allocation.monthly_credits + allocation.overflow_limit
    account_used = used.get("account", 0.0)
    head = _plan_head(snapshot, allocation)
    head["window"] = window.as_dict()
    head["account"] = {
        "monthly_credits": allocation.monthly_credits,
        "overflow_limit": allocation.overflow_limit,
        "used": account_used,
        "usage_percentage": _percentage(account_used, allocation.monthly_credits),
        "remaining": _minus(account_limit, account_used),
    }
    return {"head": head, "items": items, "graph": graph}


def _percentage(used: float, allocated: float) -> float:
    return round(used / allocated * 100, 2) if allocated > 0 else 0.0


def _minus(limit: float, used: float) -> float:
    return (to_cents(limit) - to_cents(used)) / 100


def _usage_item(snapshot: AccountSnapshot, scope: ScopeAllocation, used: Mapping[str, float]) -> dict[str, Any]:
    spent = used.get(scope.scope, 0.0)
    return {
        **_scope_fields(snapshot, scope),
        "allocated_credits": scope.credits,
        "base_allocated": scope.base_credits,
        "override_applied": scope.override,
        "used": spent,
        "usage_percentage": _percentage(spent, scope.credits),
        "overflow_cap": scope.overflow_cap,
        "overflow_used": max(0.0, _minus(spent, scope.credits)),
        "remaining": _minus(scope.limit, spent),
    }


@router.get("/v1/budgets/copilot/usage-by-scope", responses=refusals(404))
def usage_by_scope(
    request: Request,
    plan_id: str | None = Query(None, description="The plan's id or name; default: the active plan."),
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    db: Connection = Depends(connection),
) -> dict[str, Any]:
    """Credits used per allocated scope in the current cycle window, against the effective
    allocation; `remaining` is allocation + overflow_cap − used."""
    usage = _usage(request, db, account_id, plan_id)
    if usage is None:
        return _no_plan(account_id)
    return paged(usage["items"], at, **usage["head"])


def alert_level(percentage: float) -> str:
    return "exceeded" if percentage >= 100 else "critical" if percentage >= 90 else "warning"


def _entity_name(graph: Any, scope_type: str, key: str) -> str:
    directory = graph.directory("copilot")
    if scope_type == "user":
        user = directory.users.get(key)
        return str(user.fields.get("display_name") or key) if user is not None else key
    if scope_type == "team":
        return key.partition("/")[2] or key
    if scope_type == "account":
        return graph.name
    return key or scope_type


@router.get("/v1/budgets/copilot/alerts", responses=refusals(404))
def alerts(
    request: Request,
    threshold: float = Query(80, ge=0, le=1000, description="Usage percentage at or above which a scope is listed."),
    plan_id: str | None = Query(None, description="The plan's id or name; default: the active plan."),
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    db: Connection = Depends(connection),
) -> dict[str, Any]:
    """Scopes at or above `threshold` percent of their allocation in the current window, the
    account against its monthly credits included: `warning`, `critical` from 90, `exceeded`
    from 100; highest first."""
    usage = _usage(request, db, account_id, plan_id)
    if usage is None:
        return {"threshold": threshold, **_no_plan(account_id)}
    head, graph = usage["head"], usage["graph"]
    account = head["account"]
    rows = [*usage["items"]]
    if head["monthly_credits"] > 0:
        rows.append({
            "scope_type": "account", "scope_id": str(account_id), "scope_key": "", "scope": "account",
            "allocated_credits": head["monthly_credits"], "used": account["used"],
            "usage_percentage": account["usage_percentage"], "remaining": account["remaining"],
        })
    items = [
        {
            "entity_name": _entity_name(graph, row["scope_type"], row["scope_key"]),
            "usage_percentage": row["usage_percentage"],
            "alert_level": alert_level(row["usage_percentage"]),
            "budget": {"entity_type": row["scope_type"].upper(), "entity_id": row["scope_id"]},
            "scope_type": row["scope_type"],
            "scope_id": row["scope_id"],
            "scope_key": row["scope_key"],
            "scope": row["scope"],
            "allocated_credits": row["allocated_credits"],
            "used": row["used"],
            "remaining": row["remaining"],
        }
        for row in rows
        if row["usage_percentage"] >= threshold
    ]
    items.sort(key=lambda a: (-a["usage_percentage"], a["scope"]))
    return paged(items, at, threshold=threshold, plan_id=head["plan_id"], plan_name=head["plan_name"], window=head["window"])


# -- costs -----------------------------------------------------------------------------------------

@router.get("/v1/budgets/copilot/cost-breakdown", responses=refusals(400))
def cost_breakdown(
    request: Request,
    by: str = Query("agent", description="agent, llm, connection or guardrail"),
    since: Moment | None = Query(None, description="Only ledger rows at or after this time (default: all)."),
    until: Moment | None = Query(None, description="Only ledger rows before this time."),
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    db: Connection = Depends(connection),
) -> dict[str, Any]:
    """Copilot ledger totals grouped by agent, model, connection or guardrail, most credits first."""
    if by not in BREAKDOWNS:
        raise HTTPException(400, "by must be one of: agent,llm,connection,guardrail")
    totals = ledger.totals_by(db, account_id, BREAKDOWNS[by], since, until, at)
    result = paged_rows(totals, lambda rows: [row_json(r) for r in rows])
    if by in ("agent", "connection"):
        snapshot = list_snapshot(request, db, account_id)
        for entry in result["items"]:
            entry[f"{by}_id"] = snapshot.row_id(by, (entry["key"],)) if entry["key"] is not None else None
    return {"by": by, **result}


def _ledger_key(snapshot: AccountSnapshot, domain: str, scope_type: str, value: str) -> str:
    """A scope named by row id or natural key → the natural key the ledger holds. A value that
    names no current row is taken as a natural key as it is: the ledger outlives deleted orgs,
    teams and users."""
    try:
        return scope_key(snapshot, domain, scope_type, value)
    except HTTPException:
        return value.strip().lower() if scope_type == "user" else value.strip()


@router.get("/v1/costs/breakdown", responses=refusals(400))
def costs_breakdown(
    request: Request,
    domain: str = Query("copilot", description="console or copilot"),
    org_id: str | None = Query(None, description="An org's id or name."),
    team_id: str | None = Query(None, description="A team's id or `org/team`."),
    user_id: str | None = Query(None, description="A user's id or e-mail."),
    since: Moment | None = Query(None, description="Only ledger rows at or after this time (default: all)."),
    until: Moment | None = Query(None, description="Only ledger rows before this time."),
    at: Page = Depends(page),
    ctx: RequestContext = Depends(context),
    db: Connection = Depends(connection),
) -> dict[str, Any]:
    """The domain's ledger grouped by (model, agent, connection, guardrail), most credits first;
    `org_id`, `team_id` and `user_id` narrow it (all must match)."""
    require_account(ctx)
    domain = require_domain(domain)
    account_id = require_domain_admin(ctx, domain)
    snapshot = list_snapshot(request, db, account_id)
    keys = {
        scope_type: _ledger_key(snapshot, domain, scope_type, value) if value else None
        for scope_type, value in (("org", org_id), ("team", team_id), ("user", user_id))
    }
    totals = ledger.totals_by_item(
        db, account_id, domain, org_key=keys["org"], team_key=keys["team"], user_email=keys["user"], since=since, until=until, at=at,
    )

    def row_id(type_name: str, name: str | None) -> str | None:
        return snapshot.row_id(type_name, (name,)) if name is not None else None

    result = paged_rows(totals, lambda rows: [
        {
            "model_name": r.model_name,
            "agent_id": row_id("agent", r.agent_name),
            "agent_name": r.agent_name,
            "connection_id": row_id("connection", r.connection_name),
            "connection_name": r.connection_name,
            "guardrail_code": r.guardrail_code,
            "raw_cost": plain(r.raw_cost),
            "credits_incurred": plain(r.credits_incurred),
        }
        for r in rows
    ])
    return {"domain": domain, **result}


# -- cycles ----------------------------------------------------------------------------------------

@router.get("/v1/budgets/copilot/cycles/history")
def cycle_history(
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    db: Connection = Depends(connection),
) -> dict[str, Any]:
    """Cycle records written by renewal, newest first."""
    return paged_rows(budget_reads.cycles_page(db, account_id, at), lambda rows: [row_json(r) for r in rows])
