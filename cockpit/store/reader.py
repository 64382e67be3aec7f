"""Database → actual state, in bulk: one query per resource type for all managed accounts.

The accounts of the workspace are read whole; every other account only for the uniqueness of
names and email domains. Rows become `Resource`s keyed by natural keys, with the database ids
kept aside for the executor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.resources.state import Address, Resource, State
from cockpit.resources.types import ResourceType, resource_types
from cockpit.store.tables import metadata


@dataclass(frozen=True)
class AccountRow:
    id: uuid.UUID
    name: str
    workspace: str
    email_domain: str | None
    status: str


@dataclass
class ActualState:
    state: State
    ids: dict[Address, uuid.UUID] = field(default_factory=dict)
    accounts: dict[str, AccountRow] = field(default_factory=dict)
    """Every account in the database, managed or not."""
    foreign_models: dict[str, str] = field(default_factory=dict)
    """Catalog models declared by another workspace: name → workspace."""


def read_actual(connection: Connection, workspace: str) -> ActualState:
    accounts_table = metadata.tables["accounts"]
    rows = connection.execute(
        sa.select(
            accounts_table.c.id, accounts_table.c.name, accounts_table.c.workspace,
            accounts_table.c.email_domain, accounts_table.c.status,
        )
    ).all()
    result = ActualState(State())
    for row in rows:
        result.accounts[row.name] = AccountRow(row.id, row.name, row.workspace, row.email_domain, row.status)
    managed = {a.id: a.name for a in result.accounts.values() if a.workspace == workspace}
    keys_by_id: dict[str, dict[uuid.UUID, tuple[str | None, tuple[str, ...]]]] = {}
    for resource_type in resource_types():
        table = metadata.tables[resource_type.table]
        query = _select(resource_type, table, managed, workspace)
        known: dict[uuid.UUID, tuple[str | None, tuple[str, ...]]] = {}
        for row in connection.execute(query).mappings():
            if resource_type.name == "model" and row["workspace"] != workspace:
                result.foreign_models[row["name"]] = row["workspace"]
                continue
            account, key = _identity(resource_type, row, managed, keys_by_id)
            resource = Resource(
                resource_type.name,
                account,
                key,
                {name: _plain(row[name]) for name in resource_type.fields},
                secret_fingerprint=row[f"{resource_type.secret}_fingerprint"] if resource_type.secret else None,
                protect=bool(row["protect"]) if resource_type.protectable else False,
            )
            result.state.add(resource)
            result.ids[resource.address] = row["id"]
            known[row["id"]] = (account, key)
        keys_by_id[resource_type.name] = known
    return result


def _select(resource_type: ResourceType, table: sa.Table, managed: dict[uuid.UUID, str], workspace: str) -> sa.Select:
    if resource_type.name == "account":
        return sa.select(table).where(table.c.id.in_(list(managed)))
    if not resource_type.account_scoped:
        return sa.select(table)
    if "account_id" in table.c:
        return sa.select(table).where(table.c.account_id.in_(list(managed)))
    parent = resource_type.parents[0]
    parent_table = metadata.tables[_table_of(parent.type)]
    return (
        sa.select(table)
        .join(parent_table, table.c[parent.column] == parent_table.c.id)
        .where(parent_table.c.account_id.in_(list(managed)))
    )


def _table_of(type_name: str) -> str:
    return next(t.table for t in resource_types() if t.name == type_name)


def _identity(
    resource_type: ResourceType,
    row: Any,
    managed: dict[uuid.UUID, str],
    keys_by_id: dict[str, dict[uuid.UUID, tuple[str | None, tuple[str, ...]]]],
) -> tuple[str | None, tuple[str, ...]]:
    own = tuple(row[c] for c in resource_type.key_columns)
    if resource_type.name == "account":
        return row["name"], own
    if not resource_type.account_scoped:
        return None, own
    account = managed.get(row["account_id"]) if "account_id" in row else None
    parent_parts: list[str] = []
    for parent in resource_type.parents:
        parent_account, parent_key = keys_by_id[parent.type][row[parent.column]]
        account = account or parent_account
        parent_parts.extend(parent_key)
    return account, (*parent_parts, *own)


def _plain(value: Any) -> Any:
    """Database values as the config would write them: Decimal → float."""
    if isinstance(value, Decimal):
        return float(value)
    return value
