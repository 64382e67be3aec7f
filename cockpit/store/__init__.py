"""Storage: database URL and engine, tables, migrations and encrypted secrets.

Nothing here holds a global engine: callers resolve a URL, build an engine with
`create_engine_for`, and pass it down.
"""

from cockpit.store.engine import (
    DatabaseNotConnected,
    connect_check,
    create_engine_for,
    effective_environment,
    mask_url,
    resolve_database_url,
)

__all__ = [
    "DatabaseNotConnected",
    "connect_check",
    "create_engine_for",
    "effective_environment",
    "mask_url",
    "resolve_database_url",
]
