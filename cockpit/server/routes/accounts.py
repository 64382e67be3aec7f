"""Accounts, super-admin only: the account bundle, its admins, SSO with
secrets masked, feature pack, console model policy, Zitadel settings and provisioning plan.

An account is named in the path by its id or its name. The old API's field names are kept
(`account_id`, `account_name`, `domain` for the e-mail domain); the new fields ride along.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.engine import Connection

from cockpit.zitadel.desired import STANDARD_ROLES, people, project_target
from cockpit.resources.state import Resource, State
from cockpit.runtime.context import RequestContext
from cockpit.runtime.snapshots import snapshot_cache
from cockpit.server.deps import connection, context
from cockpit.server.guards import require_super_admin
from cockpit.server.reads import Page, item, no_nul, page, paged_rows, refusals
from cockpit.server.wire import account_bundle, console_model_policy, feature_pack, resource_json
from cockpit.store.queries import accounts as reads

router = APIRouter(tags=["accounts"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))

ZITADEL_CLAIM_DEFAULTS = {"account_id_claim": "alchemi:account_id", "product_domains_claim": "product_domains_allowed"}


def super_admin(ctx: RequestContext = Depends(context)) -> RequestContext:
    require_super_admin(ctx)
    return ctx


def account_row(conn: Connection, name_or_id: str) -> Any:
    """The account named by id or name; 404 "Account not found"."""
    row = reads.account_by_ref(conn, name_or_id)
    if row is None:
        raise HTTPException(404, "Account not found")
    return row


def bundles(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    """Account bundles for a page of accounts: two more queries, whatever the page size."""
    ids = [row.id for row in rows]
    admins = reads.admins_of(conn, ids)
    sso = reads.sso_of(conn, ids)
    return [account_bundle(row, admins[row.id], sso.get(row.id)) for row in rows]


@router.get("/v1/accounts")
def list_accounts(
    status: str | None = None,
    at: Page = Depends(page),
    _: RequestContext = Depends(super_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    wanted = status.strip().lower() if status else None
    return paged_rows(reads.accounts_page(conn, wanted, at), lambda rows: bundles(conn, rows))


@router.get("/v1/accounts/{account}", responses=refusals(404))
def get_account(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    return item(bundles(conn, [account_row(conn, account)])[0])


@router.get("/v1/accounts/{account}/admins", responses=refusals(404))
def list_admins(
    account: str,
    at: Page = Depends(page),
    _: RequestContext = Depends(super_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    row = account_row(conn, account)
    return paged_rows(reads.admins_page(conn, row.id, at), lambda rows: [resource_json("account_admin", r) for r in rows])


@router.get("/v1/accounts/{account}/sso", responses=refusals(404))
def get_sso(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    row = account_row(conn, account)
    sso = reads.sso_of(conn, [row.id]).get(row.id)
    if sso is None:
        return item({"id": None, "account_id": str(row.id), "sso_provider": None, "enabled": False, "sso_settings": {}})
    return item(resource_json("account_sso", sso))


@router.get("/v1/accounts/{account}/feature-pack", responses=refusals(404))
def get_feature_pack(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    return {"feature_pack": feature_pack(account_row(conn, account))}


@router.get("/v1/accounts/{account}/console-model-policy", responses=refusals(404))
def get_console_model_policy(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    return console_model_policy(account_row(conn, account))


@router.get("/v1/accounts/{account}/zitadel/config", responses=refusals(404))
def get_zitadel_config(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    return {"zitadel_config": dict(account_row(conn, account).zitadel or {})}


@router.get("/v1/accounts/{account}/zitadel/provision/plan", responses=refusals(400, 404))
def zitadel_plan(
    account: str,
    request: Request,
    role_prefix: str | None = None,
    project_id: str | None = None,
    organization_id: str | None = None,
    _: RequestContext = Depends(super_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    """The roles and grants `cockpit apply` keeps in Zitadel for this account (read only): the
    six standard roles under the account's prefix, and the role keys of each admin."""
    row = account_row(conn, account)
    settings = dict(row.zitadel or {})
    if project_id:
        settings["project_id"] = project_id
    if organization_id:
        settings["organization_id"] = organization_id
    if role_prefix is not None:
        settings["role_prefix"] = role_prefix.strip()
    target = project_target(State.of([Resource("account", row.name, (row.name,), {"zitadel": settings})]), row.name)
    if target is None:
        raise HTTPException(400, "project_id missing in request and account zitadel config")
    state = snapshot_cache(request).get(conn, row.id).state
    desired = people(state, row.name, target)
    admins = reads.admins_oldest_first(conn, row.id)
    return {
        "account_id": str(row.id),
        "account_name": row.name,
        "zitadel_config": {
            "enabled": settings.get("enabled", True),
            "issuer": settings.get("issuer"),
            "audience": settings.get("audience"),
            "project_id": target.project_id,
            "organization_id": target.organization_id,
            "account_id_claim": settings.get("account_id_claim") or ZITADEL_CLAIM_DEFAULTS["account_id_claim"],
            "product_domains_claim": settings.get("product_domains_claim") or ZITADEL_CLAIM_DEFAULTS["product_domains_claim"],
            "role_prefix": target.prefix,
            "role_mappings": {base: target.role_key(base) for base, _, _ in STANDARD_ROLES},
        },
        "standard_roles": [
            {"key": target.role_key(base), "display_name": name, "group": group, "base_key": base}
            for base, name, group in STANDARD_ROLES
        ],
        "account_admins": [
            {
                **resource_json("account_admin", admin),
                "resolved_role_keys": [target.role_key(admin.role or "account_admin")],
                "desired_role_keys": sorted(desired.get(admin.email.lower(), ())),
                "user_id": target.users.get(admin.email.lower()),
            }
            for admin in admins
        ],
        "people_total": len(desired),
    }

