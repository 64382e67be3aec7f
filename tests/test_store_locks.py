"""Apply locks: a second apply waits, times out naming the holder, and runs once it is free."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cockpit.store import tables as t
from cockpit.store.engine import create_engine_for
from cockpit.store.locks import CATALOG, LockTimeout, lock_accounts, lock_key
from cockpit.store.migrate import upgrade
from cockpit.store.runs import find_run, record_run_end, record_run_start, running_runs

TIMEOUT = 0.5
TRY_AGAIN = "Try again when it finishes, or raise --lock-timeout."


@pytest.fixture
def engine(migrated_url: str) -> Iterator[sa.Engine]:
    engine = create_engine_for(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """For behaviour only SQLite has (a parametrized test skipped on PostgreSQL fails CI)."""
    url = f"sqlite:///{tmp_path / 'cockpit.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    yield engine
    engine.dispose()


def _start(engine: sa.Engine, actor: str, accounts: list[str]) -> uuid.UUID:
    return record_run_start(
        engine,
        workspace="default",
        actor=actor,
        commit_sha="abc123",
        plan_id="plan-1",
        accounts=accounts,
        timeout=5,
    )


def _lock_and_time(
    connection: sa.Connection, names: list[str], run_id: uuid.UUID
) -> tuple[LockTimeout | None, float]:
    started = time.monotonic()
    try:
        lock_accounts(connection, names, timeout=TIMEOUT, run_id=run_id)
    except LockTimeout as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def _is_postgresql(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


def test_a_held_lock_times_out_naming_the_holder_then_is_granted(engine: sa.Engine) -> None:
    holder = _start(engine, "alice", ["acme"])
    waiter = _start(engine, "bob", ["acme"])
    with engine.connect() as holding, engine.connect() as waiting:
        holding_transaction = holding.begin()
        lock_accounts(holding, ["acme"], timeout=TIMEOUT, run_id=holder)

        with waiting.begin():
            error, waited = _lock_and_time(waiting, ["acme"], waiter)
        assert error is not None
        assert TIMEOUT - 0.05 <= waited < TIMEOUT + 2
        assert error.run_id == holder
        assert error.name == "acme"
        assert str(error).startswith(
            f"account 'acme' is locked by apply run {holder} "
            f"(actor alice, host {socket.gethostname()}, pid {os.getpid()}, started "
        )
        started_and_waited = r"started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); waited \d+\.\d s\. "
        assert re.search(started_and_waited, str(error))
        assert str(error).endswith(TRY_AGAIN)

        holding_transaction.commit()
        with waiting.begin():
            error, waited = _lock_and_time(waiting, ["acme"], waiter)
            assert error is None
            assert waited < TIMEOUT
    with engine.connect() as connection:
        locked_by = connection.execute(
            sa.select(t.apply_locks.c.run_id).where(t.apply_locks.c.name == "acme")
        ).scalar_one()
    assert locked_by == waiter


def test_another_account_is_free_on_postgresql_but_not_on_sqlite(engine: sa.Engine) -> None:
    """SQLite has one write lock for the whole database; PostgreSQL locks per account."""
    holder = _start(engine, "alice", ["acme"])
    waiter = _start(engine, "bob", ["globex"])
    with engine.connect() as holding, engine.connect() as waiting:
        with holding.begin():
            lock_accounts(holding, ["acme"], timeout=TIMEOUT, run_id=holder)
            with waiting.begin():
                error, waited = _lock_and_time(waiting, ["globex"], waiter)
    if _is_postgresql(engine):
        assert error is None
        assert waited < TIMEOUT
    else:
        assert error is not None
        assert error.run_id == holder
        assert str(error).startswith("account 'globex' is locked by apply run")


def test_the_model_catalog_has_a_lock_of_its_own(engine: sa.Engine) -> None:
    holder = _start(engine, "alice", [CATALOG, "acme"])
    waiter = _start(engine, "bob", [CATALOG])
    with engine.connect() as holding, engine.connect() as waiting:
        with holding.begin():
            lock_accounts(holding, ["acme", CATALOG], timeout=TIMEOUT, run_id=holder)
            with waiting.begin():
                error, _ = _lock_and_time(waiting, [CATALOG], waiter)
    assert error is not None
    assert error.run_id == holder
    assert str(error).startswith(f"the model catalog is locked by apply run {holder} ")


def test_several_accounts_time_out_on_the_one_held(engine: sa.Engine) -> None:
    holder = _start(engine, "alice", ["initech"])
    waiter = _start(engine, "bob", ["acme", "globex", "initech"])
    with engine.connect() as holding, engine.connect() as waiting:
        with holding.begin():
            lock_accounts(holding, ["initech"], timeout=TIMEOUT, run_id=holder)
            with waiting.begin():
                error, waited = _lock_and_time(waiting, ["initech", "acme", "globex"], waiter)
    assert error is not None
    assert error.name == "initech"
    assert error.run_id == holder
    assert waited < TIMEOUT + 2


@pytest.mark.postgres
def test_postgresql_names_the_backend_that_holds_the_lock(postgres_database_url: str) -> None:
    """The holder comes from pg_locks, not from guessing among running runs."""
    upgrade(postgres_database_url)
    engine = create_engine_for(postgres_database_url)
    try:
        holder = _start(engine, "alice", [])  # says nothing about its accounts
        _start(engine, "carol", ["acme"])  # newer, running, but holds nothing
        waiter = _start(engine, "bob", ["acme"])
        with engine.connect() as holding, engine.connect() as waiting:
            with holding.begin():
                lock_accounts(holding, ["acme"], timeout=TIMEOUT, run_id=holder)
                with waiting.begin():
                    error, _ = _lock_and_time(waiting, ["acme"], waiter)
                application = waiting.execute(
                    sa.text("SELECT application_name FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": holding.connection.dbapi_connection.info.backend_pid},
                ).scalar_one()
                assert application == f"cockpit apply {holder}"
            # SET LOCAL: the session's name is back once the transaction ends.
            assert holding.execute(sa.text("SHOW application_name")).scalar_one() != application
        assert error is not None
        assert error.run_id == holder
        assert "actor alice" in str(error)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_lock_held_outside_cockpit_names_the_backend(
    postgres_database_url: str,
) -> None:
    upgrade(postgres_database_url)
    engine = create_engine_for(postgres_database_url)
    try:
        waiter = _start(engine, "bob", ["acme"])
        with engine.connect() as holding, engine.connect() as waiting:
            with holding.begin():
                holding.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key("acme")}
                )
                backend_pid = holding.connection.dbapi_connection.info.backend_pid
                with waiting.begin():
                    error, _ = _lock_and_time(waiting, ["acme"], waiter)
        assert error is not None
        assert error.run_id is None
        assert f"is locked by PostgreSQL backend pid {backend_pid} " in str(error)
    finally:
        engine.dispose()


def test_a_running_run_whose_process_is_gone_is_not_named(engine: sa.Engine) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(finished.stdout)
    stale = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            sa.insert(t.apply_runs).values(
                id=stale,
                workspace="default",
                status="running",
                actor="mallory",
                host=socket.gethostname(),
                pid=dead_pid,
                accounts=["acme"],
            )
        )
    waiter = _start(engine, "bob", ["acme"])
    with engine.connect() as holding, engine.connect() as waiting:
        with holding.begin():
            # Somebody holds the lock without a recorded run.
            if _is_postgresql(engine):
                holding.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key("acme")}
                )
            else:
                holding.execute(
                    sa.insert(t.apply_locks).values(
                        name="other", run_id=uuid.uuid4(), locked_at=sa.func.now()
                    )
                )
            with waiting.begin():
                error, _ = _lock_and_time(waiting, ["acme"], waiter)
    assert error is not None
    assert error.run_id is None
    assert str(stale) not in str(error)
    if not _is_postgresql(engine):
        assert str(error).startswith(
            "account 'acme' is locked by another database session "
            "(no running apply run is recorded); waited "
        )


def test_recording_a_run_waits_behind_an_apply_only_on_sqlite(engine: sa.Engine) -> None:
    holder = _start(engine, "alice", ["acme"])
    with engine.connect() as holding:
        with holding.begin():
            lock_accounts(holding, ["acme"], timeout=TIMEOUT, run_id=holder)
            started = time.monotonic()
            if _is_postgresql(engine):
                _start(engine, "bob", ["acme"])
                assert time.monotonic() - started < TIMEOUT
            else:
                with pytest.raises(LockTimeout) as error:
                    record_run_start(
                        engine,
                        workspace="default",
                        actor="bob",
                        commit_sha=None,
                        plan_id=None,
                        accounts=["acme"],
                        timeout=TIMEOUT,
                    )
                assert time.monotonic() - started >= TIMEOUT - 0.05
                assert error.value.run_id == holder
    # Nothing waits any more, and bob's run is recorded on PostgreSQL only.
    with engine.connect() as connection:
        actors = sorted(run.actor or "" for run in running_runs(connection))
    assert actors == (["alice", "bob"] if _is_postgresql(engine) else ["alice"])


def test_sqlite_refuses_a_lock_taken_after_a_read(sqlite_engine: sa.Engine) -> None:
    engine = sqlite_engine
    holder = _start(engine, "alice", ["acme"])
    waiter = _start(engine, "bob", ["acme"])
    with engine.connect() as holding, engine.connect() as waiting:
        with holding.begin():
            lock_accounts(holding, ["acme"], timeout=TIMEOUT, run_id=holder)
            with waiting.begin():
                waiting.execute(sa.select(sa.func.count()).select_from(t.accounts))
                with pytest.raises(RuntimeError, match="first statement of its transaction"):
                    lock_accounts(waiting, ["acme"], timeout=TIMEOUT, run_id=waiter)


def test_lock_accounts_needs_a_transaction(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        with pytest.raises(RuntimeError, match="in a transaction"):
            lock_accounts(connection, ["acme"], timeout=TIMEOUT, run_id=uuid.uuid4())


def test_the_busy_timeout_is_restored_on_sqlite(sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.connect() as connection:
        before = connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
        connection.rollback()
        with connection.begin():
            lock_accounts(connection, ["acme"], timeout=TIMEOUT, run_id=uuid.uuid4())
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == before


def test_run_start_and_end_are_recorded(engine: sa.Engine) -> None:
    run_id = _start(engine, "alice", ["globex", "acme", "acme"])
    with engine.connect() as connection:
        run = find_run(connection, run_id)
        assert run is not None
        assert run.status == "running"
        assert run.accounts == ("acme", "globex")
        assert (run.host, run.pid) == (socket.gethostname(), os.getpid())
        assert run.started_at.tzinfo is not None
        assert [r.id for r in running_runs(connection)] == [run_id]
        assert running_runs(connection, exclude=run_id) == []
    record_run_end(engine, run_id, "failed", "boom")
    with engine.connect() as connection:
        run = find_run(connection, run_id)
        assert run is not None
        assert (run.status, run.error) == ("failed", "boom")
        assert run.finished_at is not None and run.finished_at >= run.started_at
        assert running_runs(connection) == []
    with pytest.raises(ValueError, match="succeeded, failed"):
        record_run_end(engine, run_id, "running")


def test_lock_keys_are_stable_signed_64_bit_integers() -> None:
    assert lock_key("acme") == 7224218668825452890
    assert lock_key(CATALOG) != lock_key("acme")
    for name in ("acme", CATALOG, "ä" * 200):
        assert -(2**63) <= lock_key(name) < 2**63


_CONTENDER = """
import json, sys, time
from cockpit.store.engine import create_engine_for
from cockpit.store.locks import lock_accounts
from cockpit.store.runs import record_run_end, record_run_start

url, who, start_at, out = sys.argv[1:5]
engine = create_engine_for(url)
time.sleep(max(0.0, float(start_at) - time.time()))
asked = time.time()
run_id = record_run_start(engine, workspace="default", actor=who, commit_sha=None,
                          plan_id=None, accounts=["acme"], timeout=30)
with engine.begin() as connection:
    lock_accounts(connection, ["acme"], timeout=30, run_id=run_id)
    got = time.time()
    time.sleep(0.3)
    with open(out, "a") as file:
        file.write(json.dumps([who, asked, got, time.time()]) + "\\n")
record_run_end(engine, run_id, "succeeded", timeout=30)
"""


def test_two_processes_applying_to_one_account_take_turns(
    migrated_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "intervals.jsonl"
    start_at = time.time() + 2.0  # both are up and connected by then
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTENDER, migrated_url, who, str(start_at), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for who in ("first", "second")
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    intervals = sorted(
        (json.loads(line) for line in out.read_text().splitlines()), key=lambda row: row[2]
    )
    assert sorted(row[0] for row in intervals) == ["first", "second"]
    (_, _, _, earlier_end), (_, later_asked, later_got, _) = intervals
    assert later_asked < earlier_end, "the two did not contend; the test proves nothing"
    assert later_got >= earlier_end, f"the lock was held twice at once: {intervals}"
