"""Verified Zitadel claims → who the caller is, as plain data.

Roles come from `roles`/`role` plus the keys of every claim ending in `:roles` (Zitadel's
`urn:zitadel:iam:org:project:roles` is `{roleKey: {orgId: domain}}`); scopes from
`scopes`/`scope`; domains from `product_domains_allowed`, `alchemi:product_domains_allowed` or
`product_domains`; the account from the first truthy claim of `ZITADEL_ACCOUNT_ID_CLAIMS`.

Cockpit's Zitadel projects carry prefixed role keys (`acme_account_admin`, or whatever the
account's `role_mappings` say). `base_roles` turns them back into the six base roles the guards
know, using the resolved account's own prefix and mappings only, so a role of another tenant
in a shared project never counts, and nothing ever becomes `super_admin`.

A super-admin role (`ZITADEL_SUPER_ADMIN_ROLES`) in a token is honoured only when no tenant
account produces that key: Zitadel puts the platform's role and a tenant's project role with
the same key in the same claim, so a token cannot tell them apart, and a key a tenant can
create and grant (its prefix and mappings, as stored) must never be enough. Validation and the
plan already refuse such keys; this covers settings that reached the database another way, and
fails closed: such a key makes nobody super admin until the tenant's settings are fixed.
Scopes are passed on as data only: a client asks for any scope it likes, so none grants rights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping

from cockpit.keys import ROLES
from cockpit.config.roles import PLATFORM_ROLE_KEYS, produced_role_keys

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID_CLAIMS = ("alchemi:account_id", "account_id", "urn:zitadel:iam:org:id", "org_id")
DEFAULT_SUPER_ADMIN_ROLES = PLATFORM_ROLE_KEYS
DOMAIN_CLAIMS = ("product_domains_allowed", "alchemi:product_domains_allowed", "product_domains")


@dataclass(frozen=True)
class Claims:
    subject: str | None
    email: str | None
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    domains: tuple[str, ...]
    account: str | None
    """The account id claim's value: an account's name or id."""
    is_super_admin: bool


def map_claims(
    claims: Mapping[str, Any],
    account_claims: Iterable[str],
    super_admin_roles: Iterable[str],
    tenant_keys: Collection[str] = (),
) -> Claims:
    """`tenant_keys`: the role keys tenant accounts produce, casefolded (`tenant_role_keys`);
    a super-admin role among them does not make the caller super admin."""
    roles = _dedupe([*_strings(claims.get("roles") or claims.get("role")), *_role_claim_keys(claims)])
    scope = claims.get("scopes") or claims.get("scope")
    scopes = tuple(scope.split()) if isinstance(scope, str) else _strings(scope)
    domains: tuple[str, ...] = ()
    for name in DOMAIN_CLAIMS:
        if claims.get(name):
            value = claims[name]
            domains = tuple(d.strip() for d in value.split(",") if d.strip()) if isinstance(value, str) else _strings(value)
            break
    account = next((str(claims[name]) for name in account_claims if claims.get(name) and isinstance(claims[name], (str, int))), None)
    super_roles = set(super_admin_roles)
    held = super_roles & set(roles)
    tenant_owned = {r for r in held if r.casefold() in tenant_keys}
    if tenant_owned:
        log.warning("super-admin role %s is produced by a tenant account's zitadel settings: not honoured", ", ".join(sorted(tenant_owned)))
    # An e-mail its owner could set without proving it names nobody: Zitadel says
    # `email_verified: false` for an address changed and not yet confirmed.
    email = claims.get("email") if claims.get("email_verified") is not False else None
    return Claims(
        subject=str(claims["sub"]) if claims.get("sub") else None,
        email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
        roles=roles,
        scopes=scopes,
        domains=domains,
        account=account,
        is_super_admin=claims.get("is_super_admin") is True or bool(held - tenant_owned),
    )


def base_roles(roles: Iterable[str], zitadel: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Project role keys → base roles by the account's `role_mappings` and `role_prefix`.

    Without either, the keys are already base roles. With a prefix, an unprefixed key belongs
    to some other tenant of the shared project and is dropped. Only the six base roles come
    out, never `super_admin` or another key: super admin is decided by `map_claims` alone.
    """
    zitadel = zitadel or {}
    prefix = zitadel.get("role_prefix") or ""
    mappings = zitadel.get("role_mappings") or {}
    if not prefix and not mappings:
        return _dedupe(role for role in roles if role in ROLES)
    reverse = {key: base for base, key in mappings.items() if base in ROLES}
    result = []
    for role in roles:
        if role in reverse:
            result.append(reverse[role])
        elif prefix and role.startswith(prefix) and role[len(prefix):] in ROLES:
            result.append(role[len(prefix):])
        elif not prefix and role in ROLES:
            result.append(role)
    return _dedupe(result)


def tenant_role_keys(settings: Iterable[Mapping[str, Any] | None]) -> frozenset[str]:
    """The role keys tenant accounts produce (each account's `zitadel` settings as stored),
    casefolded: the keys a tenant's apply may create and grant."""
    keys: set[str] = set()
    for zitadel in settings:
        if not isinstance(zitadel, Mapping) or not zitadel.get("project_id"):
            continue
        mappings = zitadel.get("role_mappings")
        mappings = {k: v for k, v in mappings.items() if isinstance(v, str)} if isinstance(mappings, Mapping) else {}
        keys.update(k.casefold() for k in produced_role_keys(str(zitadel.get("role_prefix") or ""), mappings).values())
    return frozenset(keys)


def _role_claim_keys(claims: Mapping[str, Any]) -> list[str]:
    keys: list[str] = []
    for name, value in claims.items():
        if not name.endswith(":roles"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                keys.extend(k for k in item if isinstance(k, str))
            elif isinstance(item, str):
                keys.append(item)
    return keys


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _dedupe(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
