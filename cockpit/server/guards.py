"""Policy guards: pass, or 403 with the old API's words (`Super admin access required`,
`Account context required`, `Domain access denied: copilot`, `copilot admin access required`).

Rights come from `is_super_admin` and the base roles only. A role string `super_admin` is not
super admin (only `map_claims` decides that, where a tenant-produced key does not count), and
OAuth scopes grant nothing: a Zitadel client may request any scope string (`*`,
`console:admin`), so the old system's scope path made any end user a domain admin.
"""

from __future__ import annotations

import uuid

from fastapi import HTTPException

from cockpit.runtime.context import RequestContext

DOMAIN_ADMIN_ROLES = {
    "copilot": {"copilot_org_admin", "copilot_team_admin", "account_admin"},
    "console": {"console_org_admin", "console_team_admin", "account_admin"},
}


def require_super_admin(context: RequestContext) -> None:
    if not context.is_super_admin:
        raise HTTPException(403, "Super admin access required")


def require_account(context: RequestContext) -> uuid.UUID:
    if context.account_id is None:
        raise HTTPException(403, "Account context required")
    return context.account_id


def require_account_admin(context: RequestContext) -> uuid.UUID:
    account_id = require_account(context)
    if context.is_super_admin or "account_admin" in context.roles:
        return account_id
    raise HTTPException(403, "Account admin access required")


def require_domain_admin(context: RequestContext, domain: str) -> uuid.UUID:
    account_id = require_account(context)
    if context.is_super_admin:
        return account_id
    if context.product_domains and domain not in context.product_domains and "all" not in context.product_domains:
        raise HTTPException(403, f"Domain access denied: {domain}")
    if context.key_domain is not None and context.key_domain != domain:
        raise HTTPException(403, f"Domain access denied: {domain}")
    if DOMAIN_ADMIN_ROLES[domain] & set(context.roles):
        return account_id
    raise HTTPException(403, f"{domain} admin access required")
