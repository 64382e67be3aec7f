"""Accounts, super-admin only (seed-behaviour §3, §15.7): the account bundle, its admins, SSO with
secrets masked, feature pack, console model policy, Zitadel settings and provisioning plan.

An account is named in the path by its id or its name. The old API's field names are kept
(`account_id`, `account_name`, `domain` for the e-mail domain); the new fields ride along.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.engine import Connection

from cockpit.zitadel.desired import STANDARD_ROLES, people, project_target
from cockpit.resources.state import Resource, State
from cockpit.runtime.context import RequestContext
from cockpit.server.deps import connection, context
from cockpit.server.guards import require_super_admin
from cockpit.server.reads import Page, as_uuid, item, mask_settings, page, paged_query, plain, no_nul, refusals
from cockpit.runtime.snapshots import snapshot_cache
from cockpit.store.tables import account_admins, account_sso, accounts

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))

ZITADEL_CLAIM_DEFAULTS = {"account_id_claim": "alchemi:account_id", "product_domains_claim": "product_domains_allowed"}


def super_admin(ctx: RequestContext = Depends(context)) -> RequestContext:
    require_super_admin(ctx)
    return ctx


def account_row(conn: Connection, name_or_id: str) -> Any:
    """The account named by id or name; 404 "Account not found"."""
    by_id = as_uuid(name_or_id)
    query = sa.select(accounts).where(accounts.c.id == by_id if by_id else accounts.c.name == name_or_id)
    row = conn.execute(query).first()
    if row is None:
        raise HTTPException(404, "Account not found")
    return row


def console_model_policy(row: Any) -> dict[str, list[str]]:
    policy = (row.model_policy or {}).get("console") or {}
    return {"allow_models": list(policy.get("allow") or []), "deny_models": list(policy.get("deny") or [])}


def feature_pack(row: Any) -> dict[str, Any]:
    pack = row.feature_pack or {}
    return {"features": list(pack.get("features") or []), "config": dict(pack.get("config") or {})}


def account_fields(row: Any) -> dict[str, Any]:
    return {
        "account_id": str(row.id),
        "account_name": row.name,
        "account_alias": row.alias,
        "description": row.description,
        "domain": row.email_domain,
        "email_domain": row.email_domain,
        "status": row.status,
        "workspace": row.workspace,
        "metadata": {
            "feature_pack": feature_pack(row),
            "console_model_policy": console_model_policy(row),
            "zitadel": dict(row.zitadel or {}),
        },
        "created_at": plain(row.created_at),
        "updated_at": plain(row.updated_at),
    }


def admin_fields(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "account_id": str(row.account_id),
        "user_email": row.email,
        "role": row.role,
        "created_at": plain(row.created_at),
        "updated_at": plain(row.updated_at),
    }


def sso_fields(row: Any) -> dict[str, Any]:
    """The SSO row with every secret setting masked; the encrypted columns are never read."""
    return {
        "id": str(row.id),
        "account_id": str(row.account_id),
        "sso_provider": row.provider,
        "enabled": bool(row.enabled),
        "sso_settings": mask_settings(row.settings),
        "created_at": plain(row.created_at),
        "updated_at": plain(row.updated_at),
    }


SSO_COLUMNS = (account_sso.c.id, account_sso.c.account_id, account_sso.c.provider, account_sso.c.enabled,
               account_sso.c.settings, account_sso.c.created_at, account_sso.c.updated_at)


def bundles(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    """Account bundles (§3.3) for a page of accounts: two more queries, whatever the page size."""
    ids = [row.id for row in rows]
    admins: dict[uuid.UUID, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        query = sa.select(account_admins).where(account_admins.c.account_id.in_(ids)).order_by(
            account_admins.c.created_at.desc(), account_admins.c.email
        )
        for admin in conn.execute(query):
            admins[admin.account_id].append(admin_fields(admin))
        sso = {r.account_id: sso_fields(r) for r in conn.execute(sa.select(*SSO_COLUMNS).where(account_sso.c.account_id.in_(ids)))}
    else:
        sso = {}
    return [
        {
            **account_fields(row),
            "admins": admins[row.id],
            "sso_config": sso.get(row.id),
            "allocation": {
                "monthly_credits": plain(row.monthly_credits),
                "overflow_limit": plain(row.overflow_limit),
                "credit_factor": plain(row.credit_factor),
                "effective_from": plain(row.created_at),
                "updated_at": plain(row.updated_at),
            },
            "feature_pack": feature_pack(row),
            "console_model_policy": console_model_policy(row),
            "model_policy": dict(row.model_policy or {}),
            "zitadel_config": dict(row.zitadel or {}),
        }
        for row in rows
    ]


@router.get("")
def list_accounts(
    status: str | None = None,
    at: Page = Depends(page),
    _: RequestContext = Depends(super_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    query = sa.select(accounts).order_by(accounts.c.created_at.desc(), accounts.c.name)
    if status:
        query = query.where(accounts.c.status == status.strip().lower())
    return paged_query(conn, query, at, lambda rows: bundles(conn, rows))


@router.get("/{account}", responses=refusals(404))
def get_account(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    return item(bundles(conn, [account_row(conn, account)])[0])


@router.get("/{account}/admins", responses=refusals(404))
def list_admins(
    account: str,
    at: Page = Depends(page),
    _: RequestContext = Depends(super_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    row = account_row(conn, account)
    query = sa.select(account_admins).where(account_admins.c.account_id == row.id).order_by(
        account_admins.c.created_at.desc(), account_admins.c.email
    )
    return paged_query(conn, query, at, lambda rows: [admin_fields(r) for r in rows])


@router.get("/{account}/sso", responses=refusals(404))
def get_sso(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    row = account_row(conn, account)
    sso = conn.execute(sa.select(*SSO_COLUMNS).where(account_sso.c.account_id == row.id)).first()
    if sso is None:
        return item({"id": None, "account_id": str(row.id), "sso_provider": None, "enabled": False, "sso_settings": {}})
    return item(sso_fields(sso))


@router.get("/{account}/feature-pack", responses=refusals(404))
def get_feature_pack(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    return {"feature_pack": feature_pack(account_row(conn, account))}


@router.get("/{account}/console-model-policy", responses=refusals(404))
def get_console_model_policy(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    return console_model_policy(account_row(conn, account))


@router.get("/{account}/zitadel/config", responses=refusals(404))
def get_zitadel_config(account: str, _: RequestContext = Depends(super_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    return {"zitadel_config": dict(account_row(conn, account).zitadel or {})}


@router.get("/{account}/zitadel/provision/plan", responses=refusals(400, 404))
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
    admins = conn.execute(
        sa.select(account_admins).where(account_admins.c.account_id == row.id).order_by(account_admins.c.created_at, account_admins.c.email)
    ).all()
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
                **admin_fields(admin),
                "resolved_role_keys": [target.role_key(admin.role or "account_admin")],
                "desired_role_keys": sorted(desired.get(admin.email.lower(), ())),
                "user_id": target.users.get(admin.email.lower()),
            }
            for admin in admins
        ],
        "people_total": len(desired),
    }

