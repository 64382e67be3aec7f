"""One page of a list: `limit`/`offset`, and the rows of a SELECT with the count before paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    def slice(self, items: Sequence[Any]) -> list[Any]:
        return list(items[self.offset : self.offset + self.limit])


@dataclass(frozen=True)
class RowPage:
    rows: list[Any]
    total: int
    """Rows matching before paging."""


def page_of(connection: Connection, query: sa.Select, at: Page) -> RowPage:
    """One COUNT and one paged SELECT."""
    total = connection.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = connection.execute(query.limit(at.limit).offset(at.offset)).all()
    return RowPage(list(rows), total)
