"""Plan → database writes, inside the caller's transaction, batched per resource type.

The executor reads only the plan's ops and values (never its rendered text or access-impact
notes), resolves each resource's parent ids from the ids it read or just inserted, resolves
secrets again and checks them against the fingerprint the plan was made with, and returns one
audit event per change.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any, Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.config.secrets import UnresolvedSecret, resolve_reference
from cockpit.plan.model import Action, Plan, ResourceChange
from cockpit.resources.state import Address
from cockpit.resources.types import ResourceType, own_key, parent_keys, types_by_name
from cockpit.store.reader import ActualState
from cockpit.store.secrets import SecretBox
from cockpit.store.tables import metadata


class ApplyError(Exception):
    """The plan cannot be carried out as planned; the transaction is rolled back."""


@dataclass(frozen=True)
class RunInfo:
    run_id: uuid.UUID
    plan_id: str
    actor: str
    commit_sha: str | None
    workspace: str


Progress = Callable[[int, int], None]


def execute(
    connection: Connection,
    plan: Plan,
    actual: ActualState,
    box: SecretBox,
    run: RunInfo,
    environ: Mapping[str, str],
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Write the plan's changes and their audit events; returns the audit events written
    (table rows, plus the account's name under `account` for shipping)."""
    ids: dict[Address, uuid.UUID] = dict(actual.ids)
    account_ids = {name: row.id for name, row in actual.accounts.items()}
    done = 0
    audit_rows: list[dict[str, Any]] = []
    now = dt.datetime.now(dt.timezone.utc)
    for (action, type_name), group in groupby(plan.changes, key=lambda c: (c.action, c.type)):
        changes = list(group)
        resource_type = types_by_name()[type_name]
        table = metadata.tables[resource_type.table]
        if action is Action.DELETE:
            _delete(connection, table, changes, ids)
        elif action is Action.CREATE:
            rows = [_row(resource_type, c, ids, account_ids, box, environ, run, new=True) for c in changes]
            connection.execute(table.insert(), rows)
            for change, row in zip(changes, rows):
                ids[change.address] = row["id"]
                if type_name == "account":
                    account_ids[change.key[0]] = row["id"]
        else:
            for change in changes:
                row = _row(resource_type, change, ids, account_ids, box, environ, run, new=False)
                connection.execute(table.update().where(table.c.id == ids[change.address]).values(**row))
        for change in changes:
            origin = _origin_now(plan, actual, change.address)
            audit_rows.append(_audit(change, account_ids, run, now, origin))
        done += len(changes)
        if progress:
            progress(done, len(plan.changes))
    record_origins(connection, plan.origins, ids, account_ids)
    if audit_rows:
        table = metadata.tables["audit_events"]
        connection.execute(table.insert(), [{c: row[c] for c in table.c.keys()} for row in audit_rows])
    return audit_rows


def _delete(connection: Connection, table: sa.Table, changes: list[ResourceChange], ids: dict[Address, uuid.UUID]) -> None:
    doomed = [ids.pop(c.address) for c in changes]
    origins = metadata.tables["resource_origins"]
    for start in range(0, len(doomed), 1000):
        connection.execute(table.delete().where(table.c.id.in_(doomed[start : start + 1000])))
        connection.execute(origins.delete().where(origins.c.id.in_(doomed[start : start + 1000])))


def record_origins(
    connection: Connection, origins: Mapping[Address, str], ids: Mapping[Address, uuid.UUID], account_ids: Mapping[str, uuid.UUID]
) -> None:
    """Store where the config declares each resource (`Plan.origins`: the new and the moved),
    by row id, replacing what an earlier apply recorded."""
    rows = [
        {"id": ids[address], "resource_type": address[0], "account_id": account_ids.get(address[1]) if address[1] else None, "origin": origin[:1024]}
        for address, origin in origins.items()
        if address in ids
    ]
    table = metadata.tables["resource_origins"]
    for start in range(0, len(rows), 1000):
        batch = rows[start : start + 1000]
        connection.execute(table.delete().where(table.c.id.in_([r["id"] for r in batch])))
        connection.execute(table.insert(), batch)


def _origin_now(plan: Plan, actual: ActualState, address: Address) -> str | None:
    """Where a resource is declared: as this apply records it, else as an earlier one did (its
    line did not move, or it is deleted: where it was declared), relative to the tenant repo."""
    if address in plan.origins:
        return plan.origins[address]
    current = actual.state.get(address)
    return None if current is None or current.origin is None else str(current.origin)


def _row(
    resource_type: ResourceType,
    change: ResourceChange,
    ids: Mapping[Address, uuid.UUID],
    account_ids: Mapping[str, uuid.UUID],
    box: SecretBox,
    environ: Mapping[str, str],
    run: RunInfo,
    *,
    new: bool,
) -> dict[str, Any]:
    row: dict[str, Any] = dict(change.after or {})
    if resource_type.protectable:
        row["protect"] = change.protect
    if resource_type.secret is not None:
        row.update(_secret_columns(resource_type, change, box, environ))
    if not new:
        return row
    row["id"] = uuid.uuid4()
    row.update(own_key(resource_type, change.key))
    if resource_type.name == "account":
        row["workspace"] = run.workspace
    elif resource_type.name == "model":
        row["workspace"] = run.workspace
    if resource_type.account_scoped and "account_id" in metadata.tables[resource_type.table].c:
        row["account_id"] = account_ids[change.account]
    for parent, key in parent_keys(resource_type, change.key):
        address = (parent.type, change.account, key)
        if address not in ids:
            raise ApplyError(f"{resource_type.display} {'/'.join(change.key)}: its {parent.type} {'/'.join(key)} does not exist")
        row[parent.column] = ids[address]
    return row


def _secret_columns(
    resource_type: ResourceType, change: ResourceChange, box: SecretBox, environ: Mapping[str, str]
) -> dict[str, Any]:
    refs = resource_type.secret_refs(change.after or {}) if resource_type.secret_refs else {}
    group = resource_type.secret
    if not refs:
        return {f"{group}_encrypted": None, f"{group}_fingerprint": None}
    base = Path(change.secret_base or ".")
    try:
        values = {name: resolve_reference(ref, base, environ) for name, ref in refs.items()}
    except UnresolvedSecret as exc:
        raise ApplyError(f"{resource_type.display} {change.label}: secret {exc}") from None
    fingerprint = box.fingerprint(values)
    if fingerprint != change.secret_fingerprint:
        raise ApplyError(
            f"{resource_type.display} {change.label}: the secret changed since the plan was made; "
            "plan again"
        )
    return {f"{group}_encrypted": box.encrypt_json(values), f"{group}_fingerprint": fingerprint}


def _audit(change: ResourceChange, account_ids: Mapping[str, uuid.UUID], run: RunInfo, now: dt.datetime, origin: str | None = None) -> dict[str, Any]:
    return {
        "origin": origin,
        "id": uuid.uuid4(),
        "account": change.account,
        "account_id": account_ids.get(change.account) if change.account else None,
        "domain": change.domain,
        "actor": run.actor,
        "action": change.action.value,
        "kind": change.type,
        "resource_key": "/".join((change.account or "", *change.key)).lstrip("/"),
        "before": _jsonable(change.before),
        "after": _jsonable(change.after),
        "plan_id": run.plan_id,
        "commit_sha": run.commit_sha,
        "apply_run_id": run.run_id,
        "created_at": now,
        "shipped_at": None,  # OpenObserve gets it after the commit (`workspace.audit_shipping`)
    }


def _jsonable(fields: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Fields hold only references to secrets, never values, so they can be audited as they are."""
    return dict(fields) if fields is not None else None
