"""Apply runs: the row each `cockpit apply` commits before it waits for its locks.

The row is written and committed in a short transaction of its own, before the apply
transaction takes its locks, so that another apply that times out waiting can read who holds
them (`cockpit.store.locks.LockTimeout` names the run). The end of the run is recorded the
same way, after the apply transaction has committed or rolled back.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from cockpit import processes
from cockpit.store.tables import apply_runs

FINISHED_STATUSES = ("succeeded", "failed")


@dataclass(frozen=True)
class RunInfo:
    """One apply run as recorded in ``apply_runs``."""

    id: uuid.UUID
    workspace: str
    status: str
    actor: str | None
    host: str | None
    pid: int | None
    accounts: tuple[str, ...]
    started_at: dt.datetime
    finished_at: dt.datetime | None
    plan_id: str | None
    commit_sha: str | None
    error: str | None

    def process_is_gone(self) -> bool:
        """True when the run's process ran on this host and no longer exists.

        Such a run crashed before it could record its end; it holds no lock (locks end with
        the process's transaction). Elsewhere, or off POSIX, we cannot tell: False.
        """
        if os.name != "posix" or self.pid is None or self.host != socket.gethostname():
            return False
        return processes.is_gone(self.pid)


def record_run_start(
    engine: Engine,
    *,
    workspace: str,
    actor: str | None,
    commit_sha: str | None,
    plan_id: str | None,
    accounts: Sequence[str] = (),
    timeout: float | None = None,
) -> uuid.UUID:
    """Record a running apply (this host and pid) and commit it; return the new run id.

    `accounts` are the lock names the run will take (account names, ``*catalog*``), so a
    waiter can tell which run blocks it even without PostgreSQL's lock view.

    On SQLite this insert needs the database write lock, which a running apply holds for
    its whole transaction: it waits up to `timeout` seconds (None: the engine's busy
    timeout) and then raises `LockTimeout` naming that run.
    """
    # Imported here: cockpit.store.locks reads runs through this module.
    from cockpit.store.locks import waiting_for_sqlite_write

    run_id = uuid.uuid4()
    with engine.begin() as connection:
        with waiting_for_sqlite_write(
            connection, timeout, names=list(accounts), run_id=run_id
        ):
            connection.execute(
                sa.insert(apply_runs).values(
                    id=run_id,
                    workspace=workspace,
                    status="running",
                    actor=actor,
                    commit_sha=commit_sha,
                    plan_id=plan_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    accounts=sorted(set(accounts)),
                    started_at=_now(),
                )
            )
    return run_id


def record_run_end(
    engine: Engine,
    run_id: uuid.UUID,
    status: str,
    error: str | None = None,
    *,
    timeout: float | None = None,
) -> None:
    """Record that run `run_id` finished with `status` (succeeded or failed) and commit.

    Call it after the apply transaction has ended. On SQLite the update waits for the
    database write lock like `record_run_start` and raises `LockTimeout` after `timeout`
    (a run that failed to lock may find the holder still running); a caller on an error
    path should catch it. A row left ``running`` by a dead process is ignored by waiters.
    """
    from cockpit.store.locks import waiting_for_sqlite_write

    if status not in FINISHED_STATUSES:
        raise ValueError(f"a run ends as one of {', '.join(FINISHED_STATUSES)}, not {status!r}")
    with engine.begin() as connection:
        with waiting_for_sqlite_write(connection, timeout, names=[], run_id=run_id):
            connection.execute(
                sa.update(apply_runs)
                .where(apply_runs.c.id == run_id)
                .values(status=status, error=error, finished_at=_now())
            )


def find_run(connection: Connection, run_id: uuid.UUID) -> RunInfo | None:
    """The run `run_id`, or None when there is no such row."""
    row = connection.execute(sa.select(apply_runs).where(apply_runs.c.id == run_id)).first()
    return _run_info(row._mapping) if row is not None else None


def running_runs(connection: Connection, *, exclude: uuid.UUID | None = None) -> list[RunInfo]:
    """Runs with status ``running``, most recent first, without `exclude` (the caller's own)."""
    query = sa.select(apply_runs).where(apply_runs.c.status == "running")
    if exclude is not None:
        query = query.where(apply_runs.c.id != exclude)
    query = query.order_by(apply_runs.c.started_at.desc())
    return [_run_info(row._mapping) for row in connection.execute(query)]


def _run_info(row: Any) -> RunInfo:
    return RunInfo(
        id=row["id"],
        workspace=row["workspace"],
        status=row["status"],
        actor=row["actor"],
        host=row["host"],
        pid=row["pid"],
        accounts=tuple(row["accounts"] or ()),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        plan_id=row["plan_id"],
        commit_sha=row["commit_sha"],
        error=row["error"],
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
