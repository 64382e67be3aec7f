"""Effective budget allocation: per scope, per plan, and a user's chain.

A scope's effective allocation is its allocation (manual or equal share), replaced by its
override when it has one; an override without an allocation has no effect. Sums are taken in
hundredths of a credit (`cockpit.credits.to_cents`), so they are exact. Credits left need the usage
ledger, which the caller passes as a mapping scope → used credits (`org:research`, `pool`,
`account`, ...); the limit of a scope is its credits plus its `overflow_cap`, the account's is
`monthly_credits + overflow_limit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from cockpit.credits import to_cents
from cockpit.policy.graph import ACCOUNT, POOL, AccountGraph
from cockpit.policy.provenance import Source, source_of
from cockpit.config.scopes import SCOPE_TYPES, Scope

Usage = Mapping[str, float]
"""Scope as the config writes it (`team:research/ml`, `pool`, `account`) → credits used."""


@dataclass(frozen=True)
class ScopeAllocation:
    plan: str
    scope: str
    credits: float
    """Effective credits: the override's when there is one, else the allocation's."""
    overflow_cap: float | None
    base_credits: float | None
    """The allocation or equal share before any override; None for the account level."""
    override: bool
    source: str | None
    """`manual`, `equal`, `cycle_rollover`, or `account` for the account level."""
    reason: str | None
    """The override's reason."""
    sources: tuple[Source, ...]
    why: str
    inside: tuple[str, ...] = ()
    """The nearest allocated scopes it nests in (empty: the top level, inside the account)."""
    used: float | None = None
    remaining: float | None = None
    """credits + overflow_cap − used, when usage was given."""

    @property
    def limit(self) -> float:
        return round(self.credits + (self.overflow_cap or 0), 2)


@dataclass(frozen=True)
class PlanAllocation:
    account: str
    plan: str
    active: bool
    cycle: str | None
    allow_overflow: bool
    monthly_credits: float
    overflow_limit: float
    credit_factor: float
    distributed: float
    """Sum of the top-level effective allocations (orgs, unnested teams and users, pool): what
    counts against monthly_credits."""
    unallocated: float
    """monthly_credits − distributed (negative when over)."""
    scopes: tuple[ScopeAllocation, ...]
    by_scope: Mapping[str, ScopeAllocation] = field(default_factory=dict, repr=False, compare=False)

    def get(self, scope: str) -> ScopeAllocation | None:
        return self.by_scope.get(scope)


def _order(scope: Scope) -> tuple[int, str]:
    return (SCOPE_TYPES.index(scope.type) if scope.type in SCOPE_TYPES else len(SCOPE_TYPES), scope.key)


def allocation_cents(graph: AccountGraph, plan: str) -> dict[Scope, int]:
    """Scope → effective allocation in hundredths of a credit: the fast path, without why."""
    cents = {scope: to_cents(a.fields.get("credits") or 0) for scope, a in graph.allocations.get(plan, {}).items()}
    for scope, override in graph.overrides.get(plan, {}).items():
        if scope in cents:
            cents[scope] = to_cents(override.fields.get("credits") or 0)
    return cents


def scope_allocation(graph: AccountGraph, plan: str, scope: Scope, used: Usage | None = None) -> ScopeAllocation | None:
    """The effective allocation of one scope in a plan, or None when the plan allocates none."""
    allocation = graph.allocations.get(plan, {}).get(scope)
    if allocation is None:
        return None
    text = str(scope)
    base = to_cents(allocation.fields.get("credits") or 0)
    cap = allocation.fields.get("overflow_cap")
    kind = allocation.fields.get("source")
    sources = [source_of(allocation, text, f"{kind or 'manual'} {base / 100:g}")]
    override = graph.overrides.get(plan, {}).get(scope)
    effective = base
    why = f"allocated {base / 100:g} credits ({'equal share' if kind == 'equal' else kind or 'manual'})"
    if override is not None:
        effective = to_cents(override.fields.get("credits") or 0)
        sources.append(source_of(override, text, f"{effective / 100:g}"))
        reason = override.fields.get("reason")
        why = f"override of {effective / 100:g} credits replaces the allocation of {base / 100:g}"
        why += f" ({reason})" if reason else ""
    return _with_usage(
        ScopeAllocation(
            plan, text, effective / 100, cap, base / 100, override is not None, kind,
            override.fields.get("reason") if override is not None else None, tuple(sources), why,
            tuple(str(s) for s in nested_in(graph, plan, scope)),
        ),
        used,
    )


def nested_in(graph: AccountGraph, plan: str, scope: Scope) -> list[Scope]:
    """The nearest allocated ancestors of a scope, as the validator nests them
    (`config/budget_rules.py`): a team inside its org; a user inside their allocated teams,
    else the allocated orgs of their teams; empty for the top level."""
    allocated = graph.allocations.get(plan, {})
    if scope.type == "team":
        org = Scope("org", scope.key.partition("/")[0])
        return [org] if org in allocated else []
    if scope.type == "user":
        teams = graph.directory("copilot").teams_of(scope.key)
        inside = [Scope("team", t) for t in teams if Scope("team", t) in allocated]
        if inside:
            return inside
        orgs = sorted({t.partition("/")[0] for t in teams})
        return [Scope("org", o) for o in orgs if Scope("org", o) in allocated]
    return []


def _with_usage(allocation: ScopeAllocation, used: Usage | None) -> ScopeAllocation:
    if used is None or allocation.scope not in used:
        return allocation
    spent = float(used[allocation.scope])
    remaining = (to_cents(allocation.limit) - to_cents(spent)) / 100
    return replace(allocation, used=spent, remaining=remaining)


def effective_allocation(graph: AccountGraph, plan: str | None = None, used: Usage | None = None) -> PlanAllocation | None:
    """Every scope of a plan (the active one by default) with its effective allocation; None
    when there is no such plan."""
    plan = plan or graph.active_plan()
    record = graph.budget_plans.get(plan) if plan else None
    if record is None:
        return None
    scopes = tuple(
        scope_allocation(graph, plan, scope, used)
        for scope in sorted(graph.allocations.get(plan, {}), key=_order)
    )
    distributed = sum(to_cents(s.credits) for s in scopes if not s.inside)
    monthly = to_cents(graph.fields.get("monthly_credits") or 0)
    return PlanAllocation(
        graph.name,
        plan,
        bool(record.fields.get("active")),
        record.fields.get("cycle"),
        bool(record.fields.get("allow_overflow")),
        monthly / 100,
        float(graph.fields.get("overflow_limit") or 0),
        float(graph.fields.get("credit_factor") or 1),
        distributed / 100,
        (monthly - distributed) / 100,
        scopes,
        {s.scope: s for s in scopes},
    )


def budget_chain(graph: AccountGraph, user: str, plan: str | None = None, used: Usage | None = None) -> tuple[ScopeAllocation, ...]:
    """The allocations that limit `user`'s copilot spending, most specific first: their own,
    their allocated teams, their allocated orgs, the `pool` when none of those is allocated,
    and always the account (`monthly_credits` + `overflow_limit`). Empty without a plan."""
    plan = plan or graph.active_plan()
    if plan is None or plan not in graph.budget_plans:
        return ()
    chain = []
    for _, scopes in graph.directory("copilot").chain(user)[:3]:
        for scope in scopes:
            allocation = scope_allocation(graph, plan, scope, used)
            if allocation is not None:
                chain.append(allocation)
    if not chain:
        pool = scope_allocation(graph, plan, POOL, used)
        if pool is not None:
            chain.append(pool)
    chain.append(_account_level(graph, plan, used))
    return tuple(chain)


def _account_level(graph: AccountGraph, plan: str, used: Usage | None) -> ScopeAllocation:
    account = graph.account
    monthly = float(graph.fields.get("monthly_credits") or 0)
    overflow = float(graph.fields.get("overflow_limit") or 0)
    sources = (source_of(account, str(ACCOUNT), f"monthly_credits {monthly:g}"),) if account else ()
    return _with_usage(
        ScopeAllocation(
            plan, str(ACCOUNT), monthly, overflow, None, False, "account", None, sources,
            f"the account's monthly_credits {monthly:g} + overflow_limit {overflow:g}",
        ),
        used,
    )
