"""The global model catalog, super-admin only (seed-behaviour §4): `GET /v1/super/models`.

Prices are per million tokens as the config writes them; the upstream key is never shown, not
even its reference.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from sqlalchemy.engine import Connection

from cockpit.server.deps import connection
from cockpit.server.reads import Page, page, paged_query, plain, no_nul, refusals
from cockpit.server.routes.accounts import super_admin
from cockpit.store.tables import models

router = APIRouter(prefix="/v1/super", tags=["catalog"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))


def _model(row: Any) -> dict[str, Any]:
    litellm = {k: v for k, v in (row.litellm or {}).items() if k != "api_key"}
    return {
        "model_id": plain(row.id),
        "model_name": row.name,
        "display_name": row.name,
        "description": row.description,
        "deployment_name": litellm.get("model"),
        "litellm_params": litellm,
        "input_cost_per_million": plain(row.input_per_million),
        "output_cost_per_million": plain(row.output_per_million),
        "workspace": row.workspace,
        "is_active": True,
        "created_at": plain(row.created_at),
        "updated_at": plain(row.updated_at),
    }


@router.get("/models", dependencies=[Depends(super_admin)])
def list_models(conn: Connection = Depends(connection), at: Page = Depends(page)) -> dict[str, Any]:
    query = sa.select(
        models.c.id, models.c.name, models.c.description, models.c.litellm, models.c.input_per_million,
        models.c.output_per_million, models.c.workspace, models.c.created_at, models.c.updated_at,
    ).order_by(models.c.name)
    return paged_query(conn, query, at, lambda rows: [_model(r) for r in rows])
