"""BudgetPlan: credits allocated (or distributed equally) to scopes, and overrides."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import BUDGET_PLAN
from cockpit.credits import split_equally, to_cents
from cockpit.resources.builder import Builder, scope_key
from cockpit.resources.documents import AccountResources, Document, header, number, protect, put, scope_sort, scope_text
from cockpit.resources.equal_shares import EqualShare, regroup
from cockpit.resources.index import AccountGraph, scope_at
from cockpit.resources.kind import Kind
from cockpit.resources.rows import SCOPE, ParentRef, ResourceType
from cockpit.resources.state import Resource

TYPES = (
    ResourceType("budget_plan", kind="BudgetPlan", table="budget_plans", key_columns=("name",), fields=("cycle", "active", "allow_overflow"), protectable=True, audit_domain="billing", label="budget plan"),
    ResourceType("budget_allocation", kind="BudgetPlan", table="budget_allocations", key_columns=SCOPE, parents=(ParentRef("plan_id", "budget_plan"),), fields=("credits", "overflow_cap", "source"), scales={"credits": 2, "overflow_cap": 2}, audit_domain="billing", label="budget allocation"),
    ResourceType("budget_override", kind="BudgetPlan", table="budget_overrides", key_columns=SCOPE, parents=(ParentRef("plan_id", "budget_plan"),), fields=("credits", "reason"), scales={"credits": 2}, audit_domain="billing", label="budget override"),
)


def expand(b: Builder, p: models.BudgetPlan) -> None:
    b.add("budget_plan", (p.name,), protect=p.protect, cycle=p.cycle, active=p.active, allow_overflow=p.allow_overflow)
    for i, allocation in enumerate(p.allocations):
        b.add("budget_allocation", (p.name, *scope_key(allocation.scope)), ("allocations", i), credits=allocation.credits, overflow_cap=allocation.overflow_cap, source="manual")
    for i, split in enumerate(p.distribute_equally):
        shares = split_equally(to_cents(split.total_credits), split.scopes)
        for j, scope in enumerate(split.scopes):
            b.add("budget_allocation", (p.name, *scope_key(scope)), ("distribute_equally", i, "scopes", j), credits=shares[scope] / 100, overflow_cap=split.overflow_cap, source="equal")
    for i, override in enumerate(p.overrides):
        b.add("budget_override", (p.name, *scope_key(override.scope)), ("overrides", i), credits=override.credits, reason=override.reason)


def export(res: AccountResources) -> dict[str, list[Document]]:
    return {f"budgets/{d['name']}.yaml": [d] for d in budget_documents(res)}


def budget_documents(res: AccountResources) -> list[Document]:
    """Allocations with `source: equal` go back into `distribute_equally` entries (regrouped:
    the original grouping is not stored), the others into `allocations`."""
    documents = []
    for plan in res.of("budget_plan"):
        name = plan.key[0]
        document = header("BudgetPlan", res.account)
        document["name"] = name
        protect(document, plan)
        for field_name in ("cycle", "active", "allow_overflow"):
            put(document, models.BudgetPlan, field_name, plan.fields[field_name])
        allocations, shares = [], []
        by_scope = sorted(res.children("budget_allocation", (name,)), key=lambda a: scope_sort(*a.key[-2:]))
        for allocation in by_scope:
            scope = scope_text(*allocation.key[-2:])
            credits, cap = allocation.fields["credits"], allocation.fields["overflow_cap"]
            if allocation.fields["source"] == "equal":
                shares.append(EqualShare(scope, to_cents(credits), None if cap is None else to_cents(cap)))
                continue
            entry = {"scope": scope, "credits": number(credits)}
            put(entry, models.Allocation, "overflow_cap", number(cap))
            allocations.append(entry)
        put(document, models.BudgetPlan, "allocations", allocations)
        distributions = []
        for split in regroup(shares):
            entry = {"scopes": list(split.scopes), "total_credits": number(split.total_cents / 100)}
            if split.cap_cents is not None:
                entry["overflow_cap"] = number(split.cap_cents / 100)
            distributions.append(entry)
        put(document, models.BudgetPlan, "distribute_equally", distributions)
        overrides = []
        for override in sorted(res.children("budget_override", (name,)), key=lambda o: scope_sort(*o.key[-2:])):
            entry = {"scope": scope_text(*override.key[-2:]), "credits": number(override.fields["credits"])}
            put(entry, models.Override, "reason", override.fields["reason"])
            overrides.append(entry)
        put(document, models.BudgetPlan, "overrides", overrides)
        documents.append(document)
    return documents


def _index_plan(g: AccountGraph, r: Resource) -> None:
    g.budget_plans[r.key[0]] = r


def _index_allocation(g: AccountGraph, r: Resource) -> None:
    g.allocations[r.key[0]][scope_at(r, 1)] = r


def _index_override(g: AccountGraph, r: Resource) -> None:
    g.overrides[r.key[0]][scope_at(r, 1)] = r


KIND = Kind(
    BUDGET_PLAN,
    TYPES,
    expand=expand,
    export=export,
    index={"budget_plan": _index_plan, "budget_allocation": _index_allocation, "budget_override": _index_override},
)
