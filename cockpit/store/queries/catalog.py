"""The global model catalog as a list, by name, with each model's deployments; the encrypted
upstream keys are never selected."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import model_deployments, models


def catalog_page(connection: Connection, at: Page) -> RowPage:
    query = sa.select(
        models.c.id, models.c.name, models.c.description, models.c.litellm, models.c.input_per_million,
        models.c.output_per_million, models.c.cached_input_per_million, models.c.fallbacks, models.c.timeout_seconds,
        models.c.workspace, models.c.created_at, models.c.updated_at,
    ).order_by(models.c.name)
    return page_of(connection, query, at)


def deployments_of(connection: Connection, model_ids: list) -> dict:
    """Model id → its deployments (name, litellm parameters, weight, rpm, tpm), by name."""
    d = model_deployments.c
    rows = connection.execute(
        sa.select(d.model_id, d.name, d.litellm, d.weight, d.rpm, d.tpm).where(d.model_id.in_(model_ids)).order_by(d.name)
    ).all() if model_ids else []
    found: dict = {}
    for row in rows:
        found.setdefault(row.model_id, []).append(row)
    return found
