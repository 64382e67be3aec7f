"""INSERT … ON CONFLICT DO NOTHING on both databases."""

from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def insert_new(connection: Connection, table: sa.Table, rows: list[dict[str, Any]], unique: Sequence[str]) -> Any:
    """An INSERT of `rows` that skips those whose `unique` key exists already (a retried
    batch, or another request that got there first)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(rows).on_conflict_do_nothing(index_elements=list(unique))
