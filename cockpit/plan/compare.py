"""The database resources of a plan: set arithmetic on natural keys, field diffs by JSON path.

Desired − actual is created, actual − desired deleted, both are compared field by field. An
account of the workspace that the config no longer names is suspended, not deleted, unless the
caller asked for its hard delete; runtime data is not in the state, so no plan touches it.
`compare_resources` is the plan's comparator for them (it also fills the fingerprints of the
actual state); `compare` is a plan of them alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from cockpit.config.diagnostics import display_path
from cockpit.plan.draft import PlanContext, PlanDraft, PlanSources, assemble
from cockpit.plan.model import SENSITIVE, SENSITIVE_CHANGED, Action, FieldChange, Plan, ResourceChange
from cockpit.resources.state import Address, Resource, State
from cockpit.resources.types import resource_types

CATALOG = "*catalog*"
"""The pseudo-account of the global model catalog, in fingerprints and locks."""


def compare(desired: State, actual: State, context: PlanContext) -> Plan:
    """A plan of the database resources alone: no access impact, no Zitadel."""
    return assemble(PlanSources(desired, actual, context), (compare_resources,))


def compare_resources(sources: PlanSources, draft: PlanDraft) -> None:
    """The comparator of the database resources: deletes first (children before parents),
    then creates and updates (parents first), and the fingerprints of the actual state."""
    desired, actual, context = sources.desired, sources.actual, sources.context
    order = {t.name: i for i, t in enumerate(resource_types())}
    creates_updates: list[ResourceChange] = []
    deletes: list[ResourceChange] = []
    for resource in desired:
        current = actual.get(resource.address)
        if current is None:
            creates_updates.append(_create(resource))
        elif not _unchanged(current, resource):
            changes = tuple(_field_changes(current, resource))
            if changes:
                creates_updates.append(_update(current, resource, changes))
    for resource in actual:
        if resource.address in desired:
            continue
        dropped = resource.account is not None and resource.account not in context.config_accounts
        if dropped and resource.account not in context.hard_delete_accounts:
            if resource.type == "account" and resource.fields.get("status") != "suspended":
                suspended = Resource(resource.type, resource.account, resource.key, {**resource.fields, "status": "suspended"}, protect=resource.protect)
                change = _update(resource, suspended, tuple(_field_changes(resource, suspended)))
                creates_updates.append(_with_reason(change, "account no longer in the config: suspended (hard delete needs --hard-delete-accounts)"))
            continue
        deletes.append(_delete(resource, context.config_path))
    creates_updates.sort(key=lambda c: (order[c.type], c.account or "", c.key))
    deletes.sort(key=lambda c: (-order[c.type], c.account or "", c.key))
    draft.changes = tuple(deletes + creates_updates)
    draft.fingerprints = fingerprints(actual)


def _with_reason(change: ResourceChange, reason: str) -> ResourceChange:
    return replace(change, reason=reason)


def _create(resource: Resource) -> ResourceChange:
    return ResourceChange(
        Action.CREATE, resource.type, resource.account, resource.key, None, dict(resource.fields),
        protect=resource.protect, origin=_origin(resource),
        secret_fingerprint=resource.secret_fingerprint, secret_base=resource.secret_base,
    )


def _origin(resource: Resource) -> str | None:
    return str(resource.origin) if resource.origin is not None else None


def _update(current: Resource, resource: Resource, changes: tuple[FieldChange, ...]) -> ResourceChange:
    return ResourceChange(
        Action.UPDATE, resource.type, resource.account, resource.key, dict(current.fields), dict(resource.fields),
        field_changes=changes, protect=resource.protect, origin=_origin(resource),
        secret_fingerprint=resource.secret_fingerprint, secret_base=resource.secret_base,
    )


def _delete(resource: Resource, config_path: str | None = None) -> ResourceChange:
    """Its origin is where the last apply recorded it declared (it is no longer in the config),
    shown as the other origins of the plan are: the path as the user would type it."""
    return ResourceChange(
        Action.DELETE, resource.type, resource.account, resource.key, dict(resource.fields), None,
        protect=resource.protect, origin=_recorded_origin(resource, config_path),
    )


def _recorded_origin(resource: Resource, config_path: str | None) -> str | None:
    origin = _origin(resource)
    if origin is None or config_path is None:
        return origin
    file, _, position = origin.partition(":")
    root = Path(config_path)
    base = root if root.is_dir() else root.parent
    return f"{display_path(base / file)}:{position}"


def _unchanged(current: Resource, desired: Resource) -> bool:
    """The fast path for the common case: equal as plain values (floats compare by value)."""
    return (
        current.fields == desired.fields
        and current.secret_fingerprint == desired.secret_fingerprint
        and current.protect == desired.protect
    )


def _field_changes(current: Resource, desired: Resource) -> Iterator[FieldChange]:
    for name, after in desired.fields.items():
        yield from diff_values((name,), current.fields.get(name), after)
    if current.secret_fingerprint != desired.secret_fingerprint:
        before = SENSITIVE if current.secret_fingerprint else None
        after = SENSITIVE_CHANGED if desired.secret_fingerprint else None
        yield FieldChange(("secret",), before, after, sensitive=True)
    if current.protect != desired.protect:
        yield FieldChange(("protect",), current.protect, desired.protect)


def diff_values(path: tuple[str | int, ...], before: Any, after: Any) -> Iterator[FieldChange]:
    """Field changes between two JSON values: mappings and lists are walked, leaves compared."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            if key not in after:
                yield FieldChange((*path, key), before[key], None)
            elif key not in before:
                yield FieldChange((*path, key), None, after[key])
            else:
                yield from diff_values((*path, key), before[key], after[key])
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (b, a) in enumerate(zip(before, after)):
            yield from diff_values((*path, index), b, a)
    elif not _same(before, after):
        yield FieldChange(path, before, after)


def _same(before: Any, after: Any) -> bool:
    if isinstance(before, bool) or isinstance(after, bool):
        return before is after
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        return abs(before - after) < 1e-9
    return before == after


def fingerprints(state: State) -> dict[str, str]:
    """Per account (and `*catalog*`): one hash over everything the plan compares.

    Resources are hashed in address order; field dicts are built in the type's field order and
    JSON comes back from one database in a stable key order, so `repr` is deterministic."""
    by_account: dict[str, list[Resource]] = {}
    for resource in state:
        by_account.setdefault(_account_of(resource), []).append(resource)
    result = {}
    for account, resources in by_account.items():
        resources.sort(key=lambda r: (r.type, r.key))
        body = repr([(r.type, r.key, r.fields, r.secret_fingerprint, r.protect) for r in resources])
        result[account] = hashlib.sha256(body.encode()).hexdigest()
    return result


def _account_of(resource: Resource) -> str:
    return resource.account if resource.account is not None else CATALOG


def address_text(address: Address) -> str:
    type_name, account, key = address
    return f"{type_name}:{account or ''}:{'/'.join(key)}"
