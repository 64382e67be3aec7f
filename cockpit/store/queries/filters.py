"""Small pieces of WHERE clauses the reads share: a row named by id or name, a time window."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa


def as_uuid(value: str | None) -> uuid.UUID | None:
    """The UUID `value` spells, or None (empty, or not a UUID)."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def by_ref(table: sa.Table, ref: str, name_column: str = "name") -> sa.ColumnElement[bool]:
    """The row a path names: by its id when `ref` is a UUID, else by its name."""
    by_id = as_uuid(ref)
    return table.c.id == by_id if by_id else table.c[name_column] == ref


def aware(moment: dt.datetime) -> dt.datetime:
    """A time from a query parameter; naive times are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def window(column: sa.ColumnElement[Any], since: dt.datetime | None, until: dt.datetime | None) -> list[sa.ColumnElement[bool]]:
    """Optional [since, until) on a time column."""
    found = []
    if since is not None:
        found.append(column >= aware(since))
    if until is not None:
        found.append(column < aware(until))
    return found
