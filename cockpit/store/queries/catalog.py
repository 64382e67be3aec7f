"""The global model catalog as a list, by name; the encrypted upstream key is never selected."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import models


def catalog_page(connection: Connection, at: Page) -> RowPage:
    query = sa.select(
        models.c.id, models.c.name, models.c.description, models.c.litellm, models.c.input_per_million,
        models.c.output_per_million, models.c.cached_input_per_million, models.c.workspace, models.c.created_at, models.c.updated_at,
    ).order_by(models.c.name)
    return page_of(connection, query, at)
