"""The console and copilot directories: orgs, teams, users, each list at one path per domain
behind that domain's admin guard. Newest first, as in the old system; rows written by one
apply share a timestamp, so names break the tie."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.engine import Connection

from cockpit.runtime.scopes import scope_key
from cockpit.server.deps import connection
from cockpit.server.reads import Page, list_snapshot, no_nul, page, paged_rows, refusals, route_domain, route_domain_admin
from cockpit.server.wire import resource_json
from cockpit.store.queries.directory import orgs_page, teams_page, users_page

router = APIRouter(tags=["directory"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))


def list_orgs(
    at: Page = Depends(page), account_id: uuid.UUID = Depends(route_domain_admin), conn: Connection = Depends(connection),
    domain: str = Depends(route_domain),
) -> dict[str, Any]:
    return paged_rows(orgs_page(conn, domain, account_id, at), lambda rows: [resource_json(f"{domain}_org", r) for r in rows])


def list_teams(
    request: Request,
    org_id: str | None = None,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(route_domain_admin),
    conn: Connection = Depends(connection),
    domain: str = Depends(route_domain),
) -> dict[str, Any]:
    """`org_id` takes the org's id or its name."""
    org = scope_key(list_snapshot(request, conn, account_id), domain, "org", org_id) if org_id else None
    return paged_rows(teams_page(conn, domain, account_id, org, at), lambda rows: [resource_json(f"{domain}_team", r) for r in rows])


def list_users(
    email: str | None = None,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(route_domain_admin),
    conn: Connection = Depends(connection),
    domain: str = Depends(route_domain),
) -> dict[str, Any]:
    wanted = email.strip().lower() if email else None
    return paged_rows(users_page(conn, domain, account_id, wanted, at), lambda rows: [resource_json(f"{domain}_user", r) for r in rows])


router.add_api_route("/v1/console/orgs", list_orgs, methods=["GET"], name="console_orgs")
router.add_api_route("/v1/console/teams", list_teams, methods=["GET"], name="console_teams", responses=refusals(404))
router.add_api_route("/v1/console/users", list_users, methods=["GET"], name="console_users")
router.add_api_route("/v1/copilot/orgs", list_orgs, methods=["GET"], name="copilot_orgs")
router.add_api_route("/v1/copilot/teams", list_teams, methods=["GET"], name="copilot_teams", responses=refusals(404))
router.add_api_route("/v1/copilot/users", list_users, methods=["GET"], name="copilot_users")
