"""The console and copilot directories (seed-behaviour §5): orgs, teams, users, per domain.

Each domain has its own paths and its own admin guard. Newest first, as in the old system;
rows written by one apply share a timestamp, so names break the tie.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from sqlalchemy.engine import Connection

from cockpit.server.deps import connection
from cockpit.server.reads import DOMAINS, Page, domain_admin, page, paged_query, plain, no_nul, refusals, scope_key_of
from cockpit.store.tables import DIRECTORIES

router = APIRouter(tags=["directory"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))


def _add_routes(domain: str) -> None:
    tables = DIRECTORIES[domain]
    orgs, teams, users = tables.orgs, tables.teams, tables.users
    admin = domain_admin(domain)

    def org_fields(row: Any) -> dict[str, Any]:
        fields = {
            "id": str(row.id),
            "account_id": str(row.account_id),
            "name": row.name,
            "description": row.description,
        }
        if domain == "copilot":
            fields["is_default_global"] = bool(row.is_default_global)
        return {**fields, "created_at": plain(row.created_at), "updated_at": plain(row.updated_at)}

    def team_fields(row: Any) -> dict[str, Any]:
        return {
            "id": str(row.id),
            "account_id": str(row.account_id),
            "org_id": str(row.org_id),
            "org_name": row.org_name,
            "name": row.name,
            "key": f"{row.org_name}/{row.name}",
            "description": row.description,
            "created_at": plain(row.created_at),
            "updated_at": plain(row.updated_at),
        }

    def user_fields(row: Any) -> dict[str, Any]:
        return {
            "id": str(row.id),
            "account_id": str(row.account_id),
            "identity_user_id": row.identity_user_id,
            "email": row.email,
            "display_name": row.display_name,
            "status": row.status,
            "created_at": plain(row.created_at),
            "updated_at": plain(row.updated_at),
        }

    @router.get(f"/v1/{domain}/orgs", name=f"{domain}_orgs")
    def list_orgs(
        at: Page = Depends(page), account_id: uuid.UUID = Depends(admin), conn: Connection = Depends(connection)
    ) -> dict[str, Any]:
        query = sa.select(orgs).where(orgs.c.account_id == account_id).order_by(orgs.c.created_at.desc(), orgs.c.name)
        return paged_query(conn, query, at, lambda rows: [org_fields(r) for r in rows])

    @router.get(f"/v1/{domain}/teams", name=f"{domain}_teams", responses=refusals(404))
    def list_teams(
        org_id: str | None = None,
        at: Page = Depends(page),
        account_id: uuid.UUID = Depends(admin),
        conn: Connection = Depends(connection),
    ) -> dict[str, Any]:
        """`org_id` takes the org's id or its name."""
        query = (
            sa.select(teams, orgs.c.name.label("org_name"))
            .join(orgs, teams.c.org_id == orgs.c.id)
            .where(teams.c.account_id == account_id)
            .order_by(teams.c.created_at.desc(), orgs.c.name, teams.c.name)
        )
        if org_id:
            query = query.where(orgs.c.name == scope_key_of(conn, account_id, domain, "org", org_id))
        return paged_query(conn, query, at, lambda rows: [team_fields(r) for r in rows])

    @router.get(f"/v1/{domain}/users", name=f"{domain}_users")
    def list_users(
        email: str | None = None,
        at: Page = Depends(page),
        account_id: uuid.UUID = Depends(admin),
        conn: Connection = Depends(connection),
    ) -> dict[str, Any]:
        query = sa.select(users).where(users.c.account_id == account_id).order_by(users.c.created_at.desc(), users.c.email)
        if email:
            query = query.where(users.c.email == email.strip().lower())
        return paged_query(conn, query, at, lambda rows: [user_fields(r) for r in rows])


for _domain in DOMAINS:
    _add_routes(_domain)
