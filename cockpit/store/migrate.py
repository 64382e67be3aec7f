"""Bring a database's schema to the current revision (`cockpit db upgrade`), or ask where it is.

The Alembic configuration is built in code: the migrations directory ships with the package
(`cockpit.shipped.shipped_dir`), and there is no alembic.ini to find or keep in sync.
"""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from cockpit.shipped import shipped_dir
from cockpit.store.engine import DatabaseNotConnected, create_engine_for, explain_connection_error

# Held (transaction-scoped) while PostgreSQL migrates, so replicas that all run
# `cockpit db upgrade` at start-up migrate one after another. The bytes spell "cockpit".
MIGRATION_LOCK_KEY = 0x636F636B706974


class SchemaNotCurrent(Exception):
    """The database is reachable but its schema is not the one this version of Cockpit needs."""


def alembic_config() -> Config:
    """An Alembic Config pointing at the shipped migrations; no ini file involved."""
    config = Config()
    config.set_main_option("script_location", str(shipped_dir("migrations")))
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision the shipped migrations know (read once: they ship with the
    package, and readiness probes ask every few seconds)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the shipped migrations directory has no revisions")
    return head


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at `url` to `revision`; return the revision now current.

    Runs in one transaction on both databases, so a failed migration leaves nothing half
    done. Running it again when already current is a no-op.
    """
    # Foreign keys off on SQLite: Alembic rebuilds tables there, and dropping the old copy
    # of a parent table would cascade-delete its children.
    engine = create_engine_for(url, foreign_keys=False)
    try:
        with _connect(engine) as connection:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(
                        f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                    )
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
            if connection.dialect.name == "sqlite":
                _check_sqlite_foreign_keys(connection)
            return _revision_on(connection) or "base"
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, or None when it was never migrated."""
    engine = create_engine_for(url)
    try:
        with _connect(engine) as connection:
            return _revision_on(connection)
    finally:
        engine.dispose()


def require_current(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the database is at the head revision.

    Commands other than `cockpit db upgrade` call this before touching tables, so an old or
    empty database gets a clear instruction instead of "no such table".
    """
    with _connect(engine) as connection:
        current = _revision_on(connection)
    head = head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"Database schema is at revision {current or 'none'}, this Cockpit needs {head}: "
            f"run `cockpit db upgrade`"
        )


def _connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except DBAPIError as exc:
        raise DatabaseNotConnected(explain_connection_error(exc, engine.url)) from None


def _revision_on(connection: Connection) -> str | None:
    revision = MigrationContext.configure(connection).get_current_revision()
    if connection.in_transaction():
        connection.rollback()
    return revision


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    """With enforcement off during the migration, make sure it left no dangling reference."""
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    connection.rollback()
    if problems:
        tables = sorted({row[0] for row in problems})
        raise RuntimeError(
            f"migration left rows with broken foreign keys in: {', '.join(tables)}"
        )
