"""Batch inserts on both databases: INSERT … ON CONFLICT DO NOTHING, and the driver's bulk path
(COPY, executemany) for rows known to be new."""

from __future__ import annotations

from itertools import repeat
from typing import Any, Callable, Mapping, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection


def skipping_existing(connection: Connection, table: sa.Table, unique: Sequence[str]) -> Any:
    """An INSERT into `table` that skips rows whose `unique` key exists already (a retried
    batch, or another request that got there first). Execute it with a list of rows for a
    batch: SQLAlchemy compiles it once and caches it, where a VALUES list of N rows is a new
    statement of N × columns parameters compiled every time (a 500-row ledger batch cost
    about 0.5 ms per row that way on PostgreSQL)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=list(unique))


def insert_new(connection: Connection, table: sa.Table, rows: list[dict[str, Any]], unique: Sequence[str]) -> Any:
    """`skipping_existing` with its rows in the statement: for a few rows, or where the
    statement's own rowcount is wanted."""
    return skipping_existing(connection, table, unique).values(rows)


def copy_rows(connection: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write `rows` into `table` in the connection's transaction, through the driver's bulk
    path: COPY on PostgreSQL (psycopg adapts the values in C), the driver's own executemany on
    SQLite (sqlite3 binds in C). SQLAlchemy's executemany costs some 50 µs of Python per
    17-column row, these 10 to 20, and absorbing the spool holds the GIL that long while
    requests wait. Values go through their column types' bind processing, JSON documents
    through orjson. No conflict handling: for rows known to be new. A refused row raises
    SQLAlchemy's error for it (`DataError`, `IntegrityError`, …)."""
    dialect = connection.dialect
    if dialect.name not in ("postgresql", "sqlite"):
        connection.execute(table.insert(), list(rows))
        return
    columns = [column for column in table.columns if any(column.name in row for row in rows)]
    keys = [column.name for column in columns]
    encoders = [(at, encode) for at, encode in enumerate(map(_copy_encoder, columns, repeat(dialect))) if encode is not None]
    names = ", ".join(dialect.identifier_preparer.quote(key) for key in keys)
    target = dialect.identifier_preparer.format_table(table)

    def encoded(row: Mapping[str, Any]) -> list[Any]:
        values = [row.get(key) for key in keys]
        for at, encode in encoders:
            if values[at] is not None:
                values[at] = encode(values[at])
        return values

    values = map(encoded, rows)
    driver = connection.connection.driver_connection
    try:
        if dialect.name == "postgresql":
            statement = f"COPY {target} ({names}) FROM STDIN"
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                for row_values in values:
                    copy.write_row(row_values)
        else:
            statement = f"INSERT INTO {target} ({names}) VALUES ({', '.join('?' * len(columns))})"
            cursor = driver.cursor()
            try:
                cursor.executemany(statement, values)
            finally:
                cursor.close()
    except dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy raises it for its own statements
        raise sa.exc.DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error) from exc
    except (TypeError, ValueError, OverflowError) as exc:  # a value no column type could encode
        raise sa.exc.DataError(statement, None, exc) from exc


def _copy_encoder(column: sa.Column[Any], dialect: Any) -> Callable[[Any], Any] | None:
    if isinstance(column.type, sa.JSON):
        return lambda document: orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS).decode()
    return column.type.dialect_impl(dialect).bind_processor(dialect)
