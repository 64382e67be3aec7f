"""INSERT … ON CONFLICT DO NOTHING on both databases."""

from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def insert_new(connection: Connection, table: sa.Table, rows: list[dict[str, Any]], unique: Sequence[str]) -> Any:
    """An INSERT of `rows` that skips those whose `unique` key exists already (a retried
    batch, or another request that got there first)."""
    return skipping_existing(connection, table, unique).values(rows)


def skipping_existing(connection: Connection, table: sa.Table, unique: Sequence[str]) -> Any:
    """The same INSERT without its rows, to execute with a list of them as parameters: compiled
    once and cached, where `insert_new` compiles anew for every number of rows."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=list(unique))
