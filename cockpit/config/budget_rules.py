"""Budget plan rules: exact hundredths, overrides, nesting, capacity.

A scope counts inside its nearest allocated ancestor: a user inside its allocated teams, else
inside the allocated orgs of its teams; a team inside its org when the org is allocated; the rest
(orgs, unnested teams and users, `pool`) at the top level, which must fit the account's credits.
"""

from __future__ import annotations

import math

from collections import defaultdict
from dataclasses import dataclass

from cockpit.config.source import NodeRef
from cockpit.config.references import Resolver, report_duplicate
from cockpit.config.tenant import Declared, DirectoryIndex, Tenant
from cockpit.credits import format_credits, is_whole_cents, split_equally, to_cents
from cockpit.config.scopes import Scope

TOP = Scope("top", "")


@dataclass
class _Entry:
    cents: int
    ref: NodeRef


def check(plans: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    active: dict[str, Declared] = {}
    for declared in plans:
        plan = declared.model
        if plan.active:
            first = active.setdefault(plan.account, declared)
            if first is not declared:
                resolver.diagnostics.error(
                    declared.at("active") if "active" in declared.source.data else declared.at("name"),
                    f"account '{plan.account}' already has an active budget plan "
                    f"'{first.model.name}' ({first.at('name')}); set active: false on one of them",
                )
        _check_plan(declared, tenant, resolver)


def _check_plan(declared: Declared, tenant: Tenant, resolver: Resolver) -> None:
    plan = declared.model
    diagnostics = resolver.diagnostics
    entries: dict[Scope, _Entry] = {}

    def add(scope: Scope | None, cents: int, path: tuple) -> None:
        if scope is None:
            return
        if scope in entries:
            report_duplicate(diagnostics, declared, path, f"allocation for '{scope}'", entries[scope].ref)
            return
        entries[scope] = _Entry(cents, declared.ref(*path))

    # Credits whose hundredths overflow a float cannot be summed in cents; report them, stop here.
    amounts = [(a.credits, ("allocations", i, "credits")) for i, a in enumerate(plan.allocations)]
    amounts += [(s.total_credits, ("distribute_equally", i, "total_credits")) for i, s in enumerate(plan.distribute_equally)]
    amounts += [(o.credits, ("overrides", i, "credits")) for i, o in enumerate(plan.overrides)]
    amounts += [(a.overflow_cap, ("allocations", i, "overflow_cap")) for i, a in enumerate(plan.allocations)]
    amounts += [(s.overflow_cap, ("distribute_equally", i, "overflow_cap")) for i, s in enumerate(plan.distribute_equally)]
    too_large = [(value, path) for value, path in amounts if value is not None and not math.isfinite(value * 100)]
    for value, path in too_large:
        diagnostics.error(declared.at(*path), f"{value} credits is too large to count in hundredths")
    if too_large:
        return

    def whole(value: float | None, path: tuple) -> None:
        if value is not None and not is_whole_cents(value):
            diagnostics.error(
                declared.at(*path), f"{value} has more than two decimals; credits go to the hundredth"
            )

    for i, allocation in enumerate(plan.allocations):
        whole(allocation.credits, ("allocations", i, "credits"))
        whole(allocation.overflow_cap, ("allocations", i, "overflow_cap"))
        scope = resolver.scope(declared, ("allocations", i, "scope"), allocation.scope)
        add(scope, to_cents(allocation.credits), ("allocations", i, "scope"))
    for i, split in enumerate(plan.distribute_equally):
        whole(split.total_credits, ("distribute_equally", i, "total_credits"))
        whole(split.overflow_cap, ("distribute_equally", i, "overflow_cap"))
        resolved: dict[Scope, tuple] = {}
        for j, text in enumerate(split.scopes):
            path = ("distribute_equally", i, "scopes", j)
            scope = resolver.scope(declared, path, text)
            if scope is None:
                continue
            if scope in resolved:
                report_duplicate(diagnostics, declared, path, f"scope '{scope}' in an equal split", declared.at(*resolved[scope]))
                continue
            resolved[scope] = path
        if len(resolved) == len(split.scopes):
            shares = split_equally(to_cents(split.total_credits), resolved)
            for scope, cents in shares.items():
                add(scope, cents, resolved[scope])

    overridden: dict[Scope, NodeRef] = {}
    for i, override in enumerate(plan.overrides):
        path = ("overrides", i, "scope")
        whole(override.credits, ("overrides", i, "credits"))
        scope = resolver.scope(declared, path, override.scope)
        if scope is None:
            continue
        if scope in overridden:
            report_duplicate(diagnostics, declared, path, f"override for '{scope}'", overridden[scope])
            continue
        overridden[scope] = declared.ref(*path)
        if scope not in entries:
            diagnostics.error(
                declared.at(*path),
                f"override for '{scope}' has no allocation to replace; add '{scope}' to "
                "allocations or distribute_equally first",
            )
            continue
        entries[scope].cents = to_cents(override.credits)

    if plan.account in tenant.accounts:
        _check_capacity(declared, entries, tenant, resolver)


def _check_capacity(
    declared: Declared, entries: dict[Scope, _Entry], tenant: Tenant, resolver: Resolver
) -> None:
    plan = declared.model
    directory = tenant.directory(plan.account, "copilot")
    inside: dict[Scope, list[Scope]] = defaultdict(list)
    for scope in entries:
        for parent in _parents(scope, entries, directory):
            inside[parent].append(scope)
    for parent, children in sorted(inside.items(), key=lambda item: str(item[0])):
        requested = sum(entries[child].cents for child in children)
        if parent == TOP:
            allocation = tenant.accounts[plan.account].model.allocation
            available = to_cents(allocation.monthly_credits)
            what = f"account '{plan.account}', which has {format_credits(available)} (monthly_credits"
            if plan.allow_overflow:
                available += to_cents(allocation.overflow_limit)
                what = f"account '{plan.account}', which has {format_credits(available)} (monthly_credits + overflow_limit"
            what += f", {tenant.accounts[plan.account].at('allocation')})"
            total = f"budget plan '{plan.name}' allocates {format_credits(requested)} at the top level"
        else:
            available = entries[parent].cents
            what = f"'{parent}', which has {format_credits(available)} ({entries[parent].ref})"
            total = f"the allocations inside it need {format_credits(requested)}"
        if requested <= available:
            continue
        for child in _pushing_over(children, entries, available):
            resolver.diagnostics.error(
                entries[child].ref.location,
                f"allocation of {format_credits(entries[child].cents)} credits to '{child}' does not "
                f"fit in {what}: {total}; over by {format_credits(requested - available)}",
            )


def _pushing_over(children: list[Scope], entries: dict[Scope, _Entry], available: int) -> list[Scope]:
    """The allocations that, in the order they are written, take the total past `available`:
    where the user has to cut, rather than the container they do not fit in."""
    def position(scope: Scope) -> tuple[str, int, int]:
        location = entries[scope].ref.location
        return (location.file, location.line, location.column)

    total, over = 0, []
    for child in sorted(children, key=position):
        total += entries[child].cents
        if total > available and entries[child].cents:
            over.append(child)
    return over


def _parents(scope: Scope, entries: dict[Scope, _Entry], directory: DirectoryIndex) -> list[Scope]:
    """The nearest allocated ancestors of a scope, or [TOP]."""
    if scope.type == "team":
        org = Scope("org", scope.key.partition("/")[0])
        return [org] if org in entries else [TOP]
    if scope.type == "user":
        teams = sorted(directory.user_teams.get(scope.key, ()))
        allocated_teams = [Scope("team", t) for t in teams if Scope("team", t) in entries]
        if allocated_teams:
            return allocated_teams
        orgs = sorted({t.partition("/")[0] for t in teams})
        allocated_orgs = [Scope("org", o) for o in orgs if Scope("org", o) in entries]
        if allocated_orgs:
            return allocated_orgs
    return [TOP]
