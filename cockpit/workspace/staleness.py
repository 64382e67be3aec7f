"""Whether a saved or waiting plan still matches the database it was made from."""

from __future__ import annotations

from typing import Iterator, Mapping

from cockpit.plan.compare import CATALOG, address_text, diff_values, fingerprints
from cockpit.plan.model import Action, FieldChange, Plan
from cockpit.resources.state import State


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


def diff_fields(before: Mapping, after: Mapping) -> Iterator[FieldChange]:
    """The changed leaves between two resources' fields, field by field."""
    for name in sorted(set(before) | set(after)):
        yield from diff_values((name,), before.get(name), after.get(name))
