"""Per-account apply locks, with a timeout and a named holder.

Apply writes the database part of a plan in one transaction. Two applies that touch the same
account must not interleave, and the second must not wait forever: after `timeout` seconds it
gets `LockTimeout`, which names the run that holds the lock (actor, host, pid, start) so the
person waiting knows whom to ask. The names locked are account names, plus the pseudo-name
``*catalog*`` (`CATALOG`) for the model catalog.

How to use it (the same code on both databases)::

    run_id = record_run_start(engine, workspace=..., actor=..., commit_sha=..., plan_id=...,
                              accounts=names, timeout=lock_timeout)
    try:
        with engine.begin() as connection:
            lock_accounts(connection, names, timeout=lock_timeout, run_id=run_id)  # first!
            ...read the actual state, check the plan is not stale, write...
        record_run_end(engine, run_id, "succeeded")
    except BaseException as exc:
        record_run_end(engine, run_id, "failed", str(exc))
        raise

`lock_accounts` must be the first statement of the transaction. On SQLite that is required
(see below); on both it is what makes the stale-plan check sound, since state read before
the lock may change before the lock is granted. The locks end with the transaction, on commit
or rollback; there is no unlock. After `LockTimeout` roll the transaction back: on PostgreSQL
it may hold the locks of the names before the one that timed out.

**PostgreSQL** takes one transaction-scoped advisory lock per name (`lock_key`: the first
eight bytes of a SHA-256 of the name, signed), in sorted order so two applies cannot deadlock.
It polls ``pg_try_advisory_xact_lock`` with a short backoff until the deadline rather than
block in ``pg_advisory_xact_lock`` under ``lock_timeout``: a statement that fails aborts the
whole transaction, and polling leaves it usable. While it holds the locks the session's
``application_name`` is ``cockpit apply <run id>`` (``SET LOCAL``, so it reverts when the
transaction ends); a waiter that times out finds the holder's backend in ``pg_locks`` and
reads the run id from there, so it names the run that really holds the lock. Different
accounts do not block each other.

**SQLite** has one write lock for the whole database, so there every apply blocks every
other, whatever the accounts. `lock_accounts` writes one `apply_locks` row per name, which
takes that write lock (the database's RESERVED lock) until the transaction ends, with the
connection's busy timeout set to `timeout` for that statement; "database is locked" becomes
`LockTimeout`. The engine begins transactions with a deferred ``BEGIN`` (see
`cockpit.store.engine`), which locks nothing until the first statement. SQLite waits for the
write lock (calls its busy handler) only when the transaction has not read anything yet: a
transaction that already read gets "database is locked" at once, because waiting could
deadlock. So on SQLite `lock_accounts` must run before any other statement of the
transaction; if it fails early for that reason it raises RuntimeError saying so. A waiter
names the holder from ``apply_runs`` rows with status running (most recent first, preferring
runs that lock one of the same names, skipping runs whose process on this host is gone).
Writing the run row itself needs the write lock too, hence `timeout` on `record_run_start`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from cockpit.store.runs import RunInfo, find_run, running_runs
from cockpit.store.tables import apply_locks

CATALOG = "*catalog*"
"""The lock name for the model catalog, which belongs to no account."""

APPLICATION_NAME_PREFIX = "cockpit apply "
_KEY_NAMESPACE = b"cockpit apply lock\0"
_FIRST_DELAY = 0.01
_MAX_DELAY = 0.2


class LockTimeout(Exception):
    """A lock was not granted within the timeout; the message names who holds it.

    ``name`` is the lock name that timed out (None: the whole SQLite database), ``run_id``
    the holder's apply run when known, ``holder`` its recorded row when there is one, and
    ``waited`` how long we waited, in seconds.
    """

    def __init__(
        self,
        name: str | None,
        *,
        waited: float,
        run_id: uuid.UUID | None = None,
        holder: RunInfo | None = None,
        other: str | None = None,
    ) -> None:
        self.name = name
        self.waited = waited
        self.run_id = run_id if run_id is not None else (holder.id if holder else None)
        self.holder = holder
        super().__init__(_message(name, waited, self.run_id, holder, other))


def lock_key(name: str) -> int:
    """The advisory lock key of lock name `name`: stable across processes and versions."""
    digest = hashlib.sha256(_KEY_NAMESPACE + name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_accounts(
    connection: Connection,
    account_names: Sequence[str],
    *,
    timeout: float,
    run_id: uuid.UUID,
) -> None:
    """Lock `account_names` (and `CATALOG` if named) until `connection`'s transaction ends.

    `connection` must be in a transaction that has run no statement yet (see the module
    docstring). Waits up to `timeout` seconds in all, then raises `LockTimeout` naming the
    holder. `run_id` is this apply's run (from `record_run_start`); it is recorded as the
    holder and is never named as a blocker.
    """
    if not connection.in_transaction():
        raise RuntimeError("lock_accounts needs a connection in a transaction (engine.begin())")
    if timeout < 0:
        raise ValueError(f"timeout must be zero or more seconds, not {timeout}")
    names = sorted(set(account_names))
    if not names:
        return
    if connection.dialect.name == "postgresql":
        _lock_postgresql(connection, names, timeout, run_id)
        _record_locks(connection, names, run_id)
        return
    # SQLite: the first write takes the database write lock; the others find it held.
    with waiting_for_sqlite_write(
        connection, timeout, names=names, run_id=run_id, first_statement=True
    ):
        _record_locks(connection, names, run_id)


@contextmanager
def waiting_for_sqlite_write(
    connection: Connection,
    timeout: float | None,
    *,
    names: Sequence[str],
    run_id: uuid.UUID,
    first_statement: bool = False,
) -> Iterator[None]:
    """On SQLite, let the writes inside wait `timeout` s for the write lock, or LockTimeout.

    None keeps the connection's busy timeout. On other databases it does nothing. With
    `first_statement`, an immediate "database is locked" is reported as the misuse it is
    (a read before the lock) instead of as a timeout.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    previous_ms = int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
    if timeout is not None:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    allowed = timeout if timeout is not None else previous_ms / 1000
    started = time.monotonic()
    try:
        yield
    except OperationalError as exc:
        if "database is locked" not in str(exc.orig):
            raise
        waited = time.monotonic() - started
        if first_statement and allowed >= 0.1 and waited < allowed / 2:
            raise RuntimeError(
                "lock_accounts must be the first statement of its transaction on SQLite: "
                "the transaction had already read, so SQLite refused to wait for the "
                "write lock"
            ) from None
        raise _sqlite_timeout(connection, names, waited, run_id) from None
    finally:
        if timeout is not None:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {previous_ms}")


# -- PostgreSQL -------------------------------------------------------------------------------


def _lock_postgresql(
    connection: Connection, names: list[str], timeout: float, run_id: uuid.UUID
) -> None:
    connection.execute(
        sa.text("SELECT set_config('application_name', :value, true)"),
        {"value": f"{APPLICATION_NAME_PREFIX}{run_id}"},
    )
    try_lock = sa.text("SELECT pg_try_advisory_xact_lock(CAST(:key AS BIGINT))")
    started = time.monotonic()
    deadline = started + timeout
    for name in names:
        key = lock_key(name)
        delay = _FIRST_DELAY
        while not connection.execute(try_lock, {"key": key}).scalar_one():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _postgresql_timeout(connection, name, time.monotonic() - started, run_id)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_DELAY)


def _postgresql_timeout(
    connection: Connection, name: str, waited: float, run_id: uuid.UUID
) -> LockTimeout:
    """Find the backend holding `name`'s advisory lock, and the apply run behind it."""
    unsigned = lock_key(name) & 0xFFFF_FFFF_FFFF_FFFF
    holders_query = sa.text(
        """
        SELECT l.pid, a.application_name
        FROM pg_locks AS l LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid)
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.pid <> pg_backend_pid()
        """
    )
    try:
        # A connection of its own: reads there see what is committed now, whatever the
        # isolation level of the waiting transaction.
        with connection.engine.connect() as reader:
            backends = reader.execute(
                holders_query, {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}
            ).all()
            for backend_pid, application in backends:
                holder_run = _run_id_from(application)
                if holder_run is not None:
                    return LockTimeout(
                        name,
                        waited=waited,
                        run_id=holder_run,
                        holder=find_run(reader, holder_run),
                    )
            candidates = _live_runs(reader, run_id, [name])
            if candidates:
                return LockTimeout(name, waited=waited, holder=candidates[0])
            if backends:
                backend_pid, application = backends[0]
                return LockTimeout(
                    name,
                    waited=waited,
                    other=f"PostgreSQL backend pid {backend_pid} "
                    f"(application {application or 'unknown'!r}, not a recorded apply run)",
                )
    except SQLAlchemyError:
        pass
    return LockTimeout(name, waited=waited)


def _run_id_from(application: str | None) -> uuid.UUID | None:
    if not application or not application.startswith(APPLICATION_NAME_PREFIX):
        return None
    try:
        return uuid.UUID(application[len(APPLICATION_NAME_PREFIX) :])
    except ValueError:
        return None


# -- SQLite -----------------------------------------------------------------------------------


def _sqlite_timeout(
    connection: Connection, names: Sequence[str], waited: float, run_id: uuid.UUID
) -> LockTimeout:
    """Name the running apply that most likely holds SQLite's (database-wide) write lock."""
    first = names[0] if names else None
    try:
        with connection.engine.connect() as reader:
            candidates = _live_runs(reader, run_id, names)
            if not candidates:
                candidates = _live_runs(reader, run_id, None)
    except SQLAlchemyError:
        return LockTimeout(first, waited=waited)
    if not candidates:
        return LockTimeout(first, waited=waited)
    holder = candidates[0]
    shared = sorted(set(names) & set(holder.accounts))
    return LockTimeout(shared[0] if shared else first, waited=waited, holder=holder)


# -- both -------------------------------------------------------------------------------------


def _live_runs(
    reader: Connection, own_run: uuid.UUID, names: Sequence[str] | None
) -> list[RunInfo]:
    """Running runs other than ours whose process may be alive; those locking `names` only,
    unless `names` is None."""
    runs = [run for run in running_runs(reader, exclude=own_run) if not run.process_is_gone()]
    if names is None:
        return runs
    wanted = set(names)
    return [run for run in runs if wanted & set(run.accounts)]


def _record_locks(connection: Connection, names: Sequence[str], run_id: uuid.UUID) -> None:
    """Write (or refresh) the `apply_locks` row of each name with this run as holder."""
    now = dt.datetime.now(dt.timezone.utc)
    for name in names:
        updated = connection.execute(
            sa.update(apply_locks)
            .where(apply_locks.c.name == name)
            .values(run_id=run_id, locked_at=now)
        ).rowcount
        if not updated:
            connection.execute(
                sa.insert(apply_locks).values(name=name, run_id=run_id, locked_at=now)
            )


def _message(
    name: str | None,
    waited: float,
    run_id: uuid.UUID | None,
    holder: RunInfo | None,
    other: str | None,
) -> str:
    if name is None:
        what = "the database"
    elif name == CATALOG:
        what = "the model catalog"
    else:
        what = f"account {name!r}"
    if holder is not None:
        started = holder.started_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        who = (
            f"apply run {holder.id} (actor {holder.actor or 'unknown'}, "
            f"host {holder.host or 'unknown'}, pid {holder.pid or 'unknown'}, "
            f"started {started})"
        )
    elif run_id is not None:
        who = f"apply run {run_id} (not recorded in apply_runs)"
    elif other is not None:
        who = other
    else:
        who = "another database session (no running apply run is recorded)"
    return (
        f"{what} is locked by {who}; waited {waited:.1f} s. "
        f"Try again when it finishes, or raise --lock-timeout."
    )
