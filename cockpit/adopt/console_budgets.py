"""A console-cockpit budget plan's allocations, equal splits and overrides, fitted to Cockpit's
budget rules: credits to the hundredth, float equal splits re-split exactly, the newest of several
overrides, and nesting and capacity (an allocation that breaks them is dropped, and reported,
since the old system checked neither). Scopes are the config's strings (`team:research/ml`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from cockpit.adopt.report import row_at as where
from cockpit.adopt.values import number
from cockpit.credits import format_credits, is_whole_cents, split_equally, to_cents

if TYPE_CHECKING:
    from cockpit.adopt.console_cockpit import AccountImport, _Importer

Row = dict[str, Any]


class PlanBudget:
    """One plan's allocations, equal splits and overrides, fitted to Cockpit's budget rules."""

    def __init__(self, importer: _Importer, plan: Row, name: str, capacity: int) -> None:
        self.i, self.plan, self.name, self.capacity = importer, plan, name, capacity
        self.report = importer.report

    def build(self) -> dict[str, Any]:
        rows = [r for r in self.i.rows["Alchemi_CopilotBudgetAllocationTable"] if r["plan_id"] == self.plan["id"]]
        cents: dict[str, int] = {}
        caps: dict[str, float | None] = {}
        groups: dict[tuple[float, Any], list[str]] = defaultdict(list)
        for row in rows:
            at = where("Alchemi_CopilotBudgetAllocationTable", row)
            scope = self.i.a.scope("copilot", row["scope_type"], row["scope_id"])
            if scope is None or scope == "account":
                self.report.add("dropped", at, f"allocation of {row['allocated_credits']} credits in plan {self.name} to {row['scope_type']} {row['scope_id']}, which no longer exists")
                continue
            credits = float(row.get("allocated_credits") or 0)
            caps[scope] = None if row.get("overflow_cap") is None else number(round(float(row["overflow_cap"]), 2))
            source = row.get("source") or "manual"
            if source == "equal":
                groups[(credits, row.get("overflow_cap"))].append(scope)
                cents[scope] = 0  # set from the split below
                continue
            if source == "cycle_rollover":
                self.report.add("review", at, f"pool allocation of {credits} credits in plan {self.name} came from a cycle rollover; it is kept as a plain allocation (`cockpit budgets renew` now adds rollovers itself)")
            if not is_whole_cents(credits):
                self.report.add("changed", at, f"allocation of {scope} in plan {self.name}: {credits} credits rounded to {round(credits, 2)} (credits go to the hundredth)")
            cents[scope] = to_cents(round(credits, 2))
        splits: list[tuple[list[str], int, Any]] = []
        for (credits, cap), scopes in groups.items():
            total = to_cents(round(credits * len(scopes), 2))
            shares = split_equally(total, scopes)
            cents.update(shares)
            splits.append((sorted(scopes), total, cap))
            if not is_whole_cents(credits):
                parts = ", ".join(f"{s} {format_credits(c)}" for s, c in sorted(shares.items()))
                self.report.add("changed", f"Alchemi_CopilotBudgetAllocationTable plan_id={self.plan['id']} source=equal", f"plan {self.name}: the equal split of {credits!r} credits each (a float) is written as distribute_equally of {format_credits(total)}, split to the hundredth: {parts}")
        overrides = self._overrides(cents)
        effective = {s: overrides.get(s, c) for s, c in cents.items()}
        dropped = _fit(effective, self.capacity, self.i.a, self._nesting_report)
        for scope in dropped:
            cents.pop(scope, None)
            overrides.pop(scope, None)
        result: dict[str, Any] = {}
        in_split = {s for scopes, _, _ in splits for s in scopes}
        allocations = [
            {"scope": s, "credits": _credits(c), **({"overflow_cap": caps[s]} if caps.get(s) is not None else {})}
            for s, c in cents.items() if s not in in_split
        ]
        distribute = []
        for scopes, total, cap in splits:
            kept = [s for s in scopes if s in cents]
            if len(kept) == len(scopes):
                distribute.append({"scopes": scopes, "total_credits": _credits(total), **({"overflow_cap": number(round(float(cap), 2))} if cap is not None else {})})
            else:
                allocations += [{"scope": s, "credits": _credits(cents[s]), **({"overflow_cap": caps[s]} if caps.get(s) is not None else {})} for s in kept]
        if allocations:
            result["allocations"] = allocations
        if distribute:
            result["distribute_equally"] = distribute
        if overrides:
            result["overrides"] = [{"scope": s, "credits": _credits(c), **({"reason": self.reasons[s]} if self.reasons.get(s) else {})} for s, c in overrides.items()]
        return result

    def _overrides(self, cents: dict[str, int]) -> dict[str, int]:
        rows = [r for r in self.i.rows["Alchemi_CopilotBudgetOverrideTable"] if r["plan_id"] == self.plan["id"]]
        by_scope: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            scope = self.i.a.scope("copilot", row["scope_type"], row["scope_id"])
            at = where("Alchemi_CopilotBudgetOverrideTable", row)
            if scope is None or scope not in cents:
                self.report.add("dropped", at, f"override of {row['override_credits']} credits in plan {self.name} for {row['scope_type']} {row['scope_id']}: no allocation to replace (the old system ignored it too)")
                continue
            by_scope[scope].append(row)
        result: dict[str, int] = {}
        self.reasons: dict[str, str] = {}
        for scope, found in by_scope.items():
            winner = found[-1]
            if len(found) > 1:
                others = ", ".join(f"{r['override_credits']} (id={r['id']})" for r in found[:-1])
                self.report.add("changed", where("Alchemi_CopilotBudgetOverrideTable", winner), f"plan {self.name} has {len(found)} overrides for {scope}; the newest ({winner['override_credits']} credits) wins, as the old effective view usually read them, and the older ones ({others}) are not carried over")
            credits = float(winner["override_credits"])
            if not is_whole_cents(credits):
                self.report.add("changed", where("Alchemi_CopilotBudgetOverrideTable", winner), f"override of {scope}: {credits} rounded to {round(credits, 2)}")
            result[scope] = to_cents(round(credits, 2))
            if winner.get("reason"):
                self.reasons[scope] = str(winner["reason"])
        return result

    def _nesting_report(self, scope: str, parent: str, need: int, available: int) -> None:
        where_ = f"Alchemi_CopilotBudgetAllocationTable plan_id={self.plan['id']} scope={scope}"
        if parent == "top":
            self.report.add("dropped", where_, f"allocation of {scope} in plan {self.name} does not fit: the top level needs {format_credits(need)} credits but monthly_credits is {format_credits(available)} (the old system allowed a negative unallocated figure; Cockpit does not). Raise monthly_credits or lower other allocations, then add it back")
        else:
            self.report.add("dropped", where_, f"allocation of {scope} in plan {self.name} breaks nesting: the allocations inside {parent} need {format_credits(need)} credits but {parent} has {format_credits(available)} (the old system had no nesting). Without its own allocation {scope} draws on {parent}")


def _fit(effective: dict[str, int], capacity: int, account: AccountImport, report) -> list[str]:
    """Drop allocations (last in sorted order first) until every allocated scope holds what
    counts inside it and the top level fits `capacity`; the dropped scopes, each reported."""
    dropped: list[str] = []
    for _ in range(len(effective) + 1):
        inside: dict[str, list[str]] = defaultdict(list)
        for scope in effective:
            for parent in _parents(scope, effective, account):
                inside[parent].append(scope)
        over = None
        for parent in sorted(inside, key=lambda p: (p == "top", p)):
            available = capacity if parent == "top" else effective[parent]
            need = sum(effective[c] for c in inside[parent])
            if need > available:
                over = (parent, need, available, max(inside[parent]))
                break
        if over is None:
            return dropped
        parent, need, available, victim = over
        report(victim, parent, need, available)
        del effective[victim]
        dropped.append(victim)
    return dropped


def _parents(scope: str, allocated: dict[str, int], account: AccountImport) -> list[str]:
    """The nearest allocated ancestors of a scope in the copilot directory, or ["top"]."""
    kind, _, name = scope.partition(":")
    if kind == "team":
        org = f"org:{name.split('/')[0]}"
        return [org] if org in allocated else ["top"]
    if kind == "user":
        teams = sorted(set(account.old.memberships.get("copilot", {}).get(name, [])))
        found = [t for t in teams if t in allocated]
        if found:
            return found
        orgs = sorted({f"org:{t[5:].split('/')[0]}" for t in teams})
        found = [o for o in orgs if o in allocated]
        return found or ["top"]
    return ["top"]


def _credits(cents: int) -> float | int:
    return number(cents / 100)
