"""The global model catalog, super-admin only: `GET /v1/super/models`.

Prices are per million tokens as the config writes them; the upstream key is never shown, not
even its reference.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.engine import Connection

from cockpit.server.deps import connection
from cockpit.server.reads import Page, no_nul, page, paged_rows, refusals
from cockpit.server.routes.accounts import super_admin
from cockpit.server.wire import catalog_model
from cockpit.store.queries.catalog import catalog_page, deployments_of

router = APIRouter(tags=["catalog"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))


@router.get("/v1/super/models", dependencies=[Depends(super_admin)])
def list_models(conn: Connection = Depends(connection), at: Page = Depends(page)) -> dict[str, Any]:
    def items(rows: list) -> list[dict[str, Any]]:
        deployments = deployments_of(conn, [r.id for r in rows])
        return [catalog_model(r, deployments.get(r.id, [])) for r in rows]

    return paged_rows(catalog_page(conn, at), items)
