"""One account's applied state as the policy functions want it, cached in the app.

Effective answers (models, guardrails, features, discover) need the account's whole graph:
membership expanded from the directory, every grant indexed by scope. Reading it costs a few
bulk queries and, on a tenant of 20,000 people, a good fraction of a second; a lookup in it
costs microseconds. So each replica keeps the graph of the accounts it serves and checks,
per request, whether it is still current.

Only `cockpit apply` changes an account's configuration, and it writes one audit event per
change in the same transaction, stamped with the apply's start time (accounts are locked, so
later applies stamp later times). The newest audit event of the account (and of the global
model catalog, whose events carry no account) is therefore a version: one indexed MAX per
request. Nothing here is needed by another replica; each builds its own.

Within `ttl` seconds of the last check a snapshot is trusted without asking the database, so
an effective lookup touches no connection at all (async routes use `account_snapshot`); a
replica may thus answer from the previous apply for up to `ttl` seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import HTTPException, Request
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool

from cockpit.memory import freeze_survivors, paused_gc
from cockpit.observe.metrics import record_snapshot_checked
from cockpit.runtime import scopes
from cockpit.policy.graph import AccountGraph, build_graphs, with_catalog
from cockpit.config.scopes import Scope
from cockpit.resources.state import Address, Resource, State
from cockpit.store.reader import read_accounts
from cockpit.store.tables import accounts, audit_events

MAX_ACCOUNTS = 64
"""Snapshots kept per process; the least recently used goes first."""
TTL_SECONDS = 2.0
"""How long a checked snapshot is trusted before its version is read again."""

Version = tuple[Any, Any]


@dataclass
class AccountSnapshot:
    """The applied state of one account, its policy graph and the row ids of its resources."""

    account_id: uuid.UUID
    name: str
    version: Version
    state: State
    graph: AccountGraph
    ids: dict[Address, uuid.UUID]
    by_id: dict[uuid.UUID, Address] = field(default_factory=dict)
    checked_at: float = 0.0
    """`time.monotonic()` of the last time its version was found current."""
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    """Answers derived from this snapshot (a caller's models, guardrails, budget chain), kept
    as long as the snapshot is current."""

    def __post_init__(self) -> None:
        self.by_id = {row_id: address for address, row_id in self.ids.items()}

    def row_id(self, type_name: str, key: tuple[str, ...]) -> str | None:
        found = self.ids.get((type_name, self.name if type_name != "model" else None, key))
        return str(found) if found else None

    def scope_id(self, domain: str, scope: Scope | tuple[str, str]) -> str | None:
        """The old API's `scope_id` of a scope (`cockpit.runtime.scopes`)."""
        return scopes.scope_id(self, domain, scope)

    def scope_fields(self, domain: str, scope: Scope | tuple[str, str]) -> dict[str, Any]:
        return scopes.scope_fields(self, domain, scope)

    def find(self, domain: str, scope_type: str, value: str) -> Scope:
        """The scope named by a row id or a natural key; 404 when this account has none."""
        return scopes.find_scope(self, domain, scope_type, value)

    def resource(self, type_name: str, key: tuple[str, ...]) -> Resource | None:
        return self.state.get((type_name, self.name, key))


def read_version(connection: Connection, account_id: uuid.UUID) -> Version:
    """The newest audit event of the account and of the model catalog."""
    newest = sa.func.max(audit_events.c.created_at)
    account = sa.select(newest).where(audit_events.c.account_id == account_id).scalar_subquery()
    catalog = sa.select(newest).where(audit_events.c.account_id.is_(None)).scalar_subquery()
    row = connection.execute(sa.select(account, catalog)).one()
    return (row[0], row[1])


def read_account_state(connection: Connection, account_id: uuid.UUID, name: str) -> tuple[State, dict[Address, uuid.UUID]]:
    """One account's resources and the global model catalog, whatever workspace manages them."""
    read = read_accounts(connection, {account_id: name})
    return read.state, read.ids


def load_snapshot(engine: Engine, account_id: uuid.UUID) -> AccountSnapshot:
    """Read the version and the state in one transaction that sees one committed state."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            version = read_version(connection, account_id)
            name = connection.execute(sa.select(accounts.c.name).where(accounts.c.id == account_id)).scalar()
            if name is None:
                raise HTTPException(404, "Account not found")
            with paused_gc():
                state, ids = read_account_state(connection, account_id, name)
                graph = build_graphs(state).get(name) or AccountGraph(name)
                if not graph.catalog:
                    with_catalog(graph, state)
                return AccountSnapshot(account_id, name, version, state, graph, ids)


class SnapshotCache:
    """The snapshots of the accounts a process serves; one loader per account at a time."""

    def __init__(self, engine: Engine, max_accounts: int = MAX_ACCOUNTS, ttl: float = TTL_SECONDS) -> None:
        self.engine = engine
        self.max_accounts = max_accounts
        self.ttl = ttl
        self._snapshots: OrderedDict[uuid.UUID, AccountSnapshot] = OrderedDict()
        self._locks: dict[uuid.UUID, threading.Lock] = {}
        self._guard = threading.Lock()

    def fresh(self, account_id: uuid.UUID) -> AccountSnapshot | None:
        """The snapshot if it was checked within `ttl`; never touches the database."""
        with self._guard:
            found = self._snapshots.get(account_id)
            if found is not None and time.monotonic() - found.checked_at < self.ttl:
                self._snapshots.move_to_end(account_id)
                return found
        return None

    def get(self, connection: Connection | None, account_id: uuid.UUID) -> AccountSnapshot:
        """A current snapshot: fresh, or checked against the database's version (on
        `connection`, or one of its own), or loaded anew."""
        found = self.fresh(account_id)
        if found is not None:
            return found
        checked = time.monotonic()
        if connection is None:
            # Give the connection back before loading, which takes one of its own: threads
            # holding one each while they wait for the loader would starve the pool.
            with self.engine.connect() as own:
                version = read_version(own, account_id)
        else:
            version = read_version(connection, account_id)
        return self._current(account_id, version, checked)

    def current(self, connection: Connection, account_id: uuid.UUID) -> AccountSnapshot:
        """A snapshot checked against the database's version on `connection` now, however
        recently it was checked: for answers that join it with rows read in the same request
        (a list's scope ids), which must not lag those rows by up to `ttl`."""
        checked = time.monotonic()
        return self._current(account_id, read_version(connection, account_id), checked)

    def _current(self, account_id: uuid.UUID, version: Version, checked: float) -> AccountSnapshot:
        current = self._matching(account_id, version, checked)
        if current is not None:
            return current
        with self._guard:
            lock = self._locks.setdefault(account_id, threading.Lock())
        with lock:
            current = self._matching(account_id, version, checked)
            if current is not None:
                return current
            loaded = load_snapshot(self.engine, account_id)
            loaded.checked_at = checked
            record_snapshot_checked(loaded.name, time.time())
            with self._guard:
                self._snapshots[account_id] = loaded
                self._snapshots.move_to_end(account_id)
                while len(self._snapshots) > self.max_accounts:
                    self._snapshots.popitem(last=False)
            freeze_survivors()
            return loaded

    def _matching(self, account_id: uuid.UUID, version: Version, checked: float) -> AccountSnapshot | None:
        with self._guard:
            found = self._snapshots.get(account_id)
            if found is not None and found.version == version:
                found.checked_at = max(found.checked_at, checked)
                self._snapshots.move_to_end(account_id)
            else:
                return None
        record_snapshot_checked(found.name, time.time())
        return found


_creating = threading.Lock()


def snapshot_cache(request: Request) -> SnapshotCache:
    """The app's cache, made on first use (the app factory need not know about it)."""
    state = request.app.state
    cache = getattr(state, "snapshots", None)
    if cache is None:
        with _creating:
            cache = getattr(state, "snapshots", None)
            if cache is None:
                cache = state.snapshots = SnapshotCache(state.engine)
    return cache


async def account_snapshot(request: Request, account_id: uuid.UUID) -> AccountSnapshot:
    """For async routes: the fresh snapshot without leaving the event loop, else checked or
    loaded in the thread pool (the database calls block)."""
    cache = snapshot_cache(request)
    return cache.fresh(account_id) or await run_in_threadpool(cache.get, None, account_id)
