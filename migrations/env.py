"""Alembic environment for Cockpit.

There is no alembic.ini: `cockpit.store.migrate` builds the Config in code and passes either an
open connection (``config.attributes["connection"]``, the normal path) or a URL
(``config.attributes["url"]`` or the ``sqlalchemy.url`` main option).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cockpit.store.engine import create_engine_for, is_sqlite, normalise_database_url
from cockpit.store.tables import metadata

config = context.config


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass a connection or a URL in the Alembic config")
    return normalise_database_url(url)


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    url = _url()
    _configure(url=url, literal_binds=True, render_as_batch=is_sqlite(url))
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    # SQLite table rebuilds must not cascade deletes into child tables.
    engine = create_engine_for(_url(), foreign_keys=False)
    try:
        with engine.begin() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
