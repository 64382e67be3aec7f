"""Database → actual state, in bulk: one query per resource type for the accounts read.

`read_actual` reads the accounts of a workspace whole, and every other account only for the
uniqueness of names and email domains; `read_accounts` is its read loop, which the API's
account snapshots and `cockpit explain` use for one account. Rows become `Resource`s keyed by
natural keys, with the database ids kept aside (the executor updates by id, the API shows them).
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
    read = read_accounts(connection, managed, workspace)
    result.state, result.ids, result.foreign_models = read.state, read.ids, read.foreign_models
    return result


@dataclass
class AccountsRead:
    """The resources of some accounts and of the model catalog, with their row ids."""

    state: State = field(default_factory=State)
    ids: dict[Address, uuid.UUID] = field(default_factory=dict)
    foreign_models: dict[str, str] = field(default_factory=dict)
    """Catalog models left out because another workspace declares them: name → workspace."""


def read_accounts(connection: Connection, managed: dict[uuid.UUID, str], workspace: str | None = None) -> AccountsRead:
    """The resources of the `managed` accounts (id → name) and the global model catalog, one
    query per resource type. With a `workspace`, the catalog models another workspace declares
    are left out (listed in `foreign_models`); without one, the whole catalog is read.

    The planner reads every account of a workspace this way, the API's snapshot and `explain`
    one account."""
    result = AccountsRead()
    state, ids = result.state, result.ids
    keys_by_id: dict[str, dict[uuid.UUID, tuple[str | None, tuple[str, ...]]]] = {}
    for resource_type in resource_types():
        table = metadata.tables[resource_type.table]
        columns = _columns(resource_type, table)
        query = _select(resource_type, table, managed).with_only_columns(*(table.c[c] for c in columns))
        position = {name: i for i, name in enumerate(columns)}
        fields = [position[name] for name in resource_type.fields]
        secret = position.get(f"{resource_type.secret}_fingerprint")
        protect = position.get("protect")
        foreign_at = position["workspace"] if resource_type.name == "model" and workspace is not None else None
        known: dict[uuid.UUID, tuple[str | None, tuple[str, ...]]] = {}
        identity = _identity_reader(resource_type, position, managed, keys_by_id)
        for row in connection.execute(query).all():
            if foreign_at is not None and row[foreign_at] != workspace:
                result.foreign_models[row[position["name"]]] = row[foreign_at]
                continue
            found = identity(row)
            if found is None:  # its parent was left out: a deployment of another workspace's model
                continue
            account, key = found
            resource = Resource(
                resource_type.name,
                account,
                key,
                {name: _plain(row[i]) for name, i in zip(resource_type.fields, fields)},
                row[secret] if secret is not None else None,
                bool(row[protect]) if protect is not None else False,
            )
            address = (resource_type.name, account, key)
            state.resources[address] = resource
            ids[address] = row[0]
            known[row[0]] = (account, key)
        keys_by_id[resource_type.name] = known
    _read_origins(connection, managed, state, ids)
    return result


def _read_origins(connection: Connection, managed: dict[uuid.UUID, str], state: State, ids: dict[Address, uuid.UUID]) -> None:
    """Each resource's `file:line:column` as its last apply recorded it (`resource_origins`),
    so explain, the effective views and the plan's deletes can say where it is declared."""
    origins = metadata.tables["resource_origins"]
    query = sa.select(origins.c.id, origins.c.origin).where(
        sa.or_(origins.c.account_id.in_(list(managed)), origins.c.account_id.is_(None))
    )
    recorded = dict(connection.execute(query).all())
    if not recorded:
        return
    for address, row_id in ids.items():
        origin = recorded.get(row_id)
        if origin is not None:
            state.resources[address].origin = origin


def _columns(resource_type: ResourceType, table: sa.Table) -> list[str]:
    """id first, then what identity and comparison need: one SELECT list per type."""
    wanted = ["id", *(p.column for p in resource_type.parents), *resource_type.key_columns, *resource_type.fields]
    if "account_id" in table.c and resource_type.account_scoped:
        wanted.append("account_id")
    if resource_type.secret:
        wanted.append(f"{resource_type.secret}_fingerprint")
    if resource_type.protectable:
        wanted.append("protect")
    if "workspace" in table.c:
        wanted.append("workspace")
    return list(dict.fromkeys(wanted))


def _select(resource_type: ResourceType, table: sa.Table, managed: dict[uuid.UUID, str]) -> sa.Select:
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


def _identity_reader(
    resource_type: ResourceType,
    position: dict[str, int],
    managed: dict[uuid.UUID, str],
    keys_by_id: dict[str, dict[uuid.UUID, tuple[str | None, tuple[str, ...]]]],
):
    """A function row → (account, natural key) for one type: parents' keys, then own columns;
    None for a row whose parent was not read (a global type's parent of another workspace)."""
    own = [position[c] for c in resource_type.key_columns]
    if resource_type.name == "account":
        return lambda row: (row[position["name"]], tuple(row[i] for i in own))
    if not resource_type.account_scoped and not resource_type.parents:
        return lambda row: (None, tuple(row[i] for i in own))
    account_at = position.get("account_id")
    parents = [(keys_by_id[p.type], position[p.column]) for p in resource_type.parents]

    def identity(row: Any) -> tuple[str | None, tuple[str, ...]] | None:
        account = managed.get(row[account_at]) if account_at is not None else None
        key: tuple[str, ...] = ()
        for known, at in parents:
            parent = known.get(row[at])
            if parent is None:
                return None
            parent_account, parent_key = parent
            account = account or parent_account
            key += parent_key
        return account, key + tuple(row[i] for i in own)

    return identity


def _plain(value: Any) -> Any:
    """Database values as the config would write them: Decimal → float."""
    if isinstance(value, Decimal):
        return float(value)
    return value
