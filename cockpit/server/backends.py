"""The authentication backends the tenant resolver tries in order: each looks at a token and
answers who the caller is, or None when the token is not theirs or not valid.

They block (database, JWKS) and run in worker threads; `cockpit.server.tenant` caches their
answers. They never read `X-Account-Id`: the resolver applies it, for super admins only.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from cockpit.keys import KEY_PREFIX, allowed_roles, hash_key, suspended_domains, user_suspended
from cockpit.server.claims import DEFAULT_ACCOUNT_ID_CLAIMS, DEFAULT_SUPER_ADMIN_ROLES, base_roles, map_claims
from cockpit.runtime.context import RequestContext
from cockpit.server.jwt import InvalidToken, JwksCache, JwtSettings, jwt_shaped, verify
from cockpit.store.queries import credentials
from cockpit.store.tables import DOMAINS
from cockpit.store.engine import write_transaction

log = logging.getLogger(__name__)

TOUCH_INTERVAL_SECONDS = 60.0
"""`last_used_at` is written at most this often per key, off the request path."""
TRUTHY = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AccountRef:
    id: uuid.UUID
    name: str
    status: str
    zitadel: Mapping[str, Any]


class AccountFinder(Protocol):
    def find(self, name_or_id: str) -> AccountRef | None: ...

    def tenant_role_keys(self) -> frozenset[str]:
        """The role keys every account's zitadel settings produce (`claims.tenant_role_keys`)."""
        ...


@dataclass(frozen=True)
class Refused:
    """A credential that is valid but must get no service (a suspended account or user): the
    tenant middleware answers `status` with `message` instead of running the request, so the
    caller learns why rather than seeing an empty context."""

    message: str
    code: str
    """As the proxy's own refusals: account_suspended, user_suspended."""
    status: int = 403


Found = tuple[RequestContext | Refused, float | None]
"""A context (or a refusal) and when it stops being valid (epoch seconds; None: no limit of its own)."""


class MasterKeyBackend:
    """`COCKPIT_MASTER_KEY` (or `LITELLM_MASTER_KEY`): super admin. Cheap, so never cached."""

    def __init__(self, master_key: str | None) -> None:
        self._key = master_key.encode("utf-8") if master_key else None
        self._context = RequestContext(is_super_admin=True, auth_provider="litellm_master_key")

    def authenticate(self, token: str) -> RequestContext | None:
        if self._key is not None and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._key):
            return self._context
        return None


class VirtualKeyBackend:
    """Keys issued by `cockpit keys create`: found by SHA-256; not revoked; the account active;
    the user still known to the account's config (an admin, or in a directory the key serves,
    not suspended there). Roles: the key's role while the config still gives it, else the admin
    row's role, else `end_user`. Domains: the key's domain, or both less those whose directory
    suspends the user. A suspended account or user is refused with a message (`Refused`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._touched: dict[uuid.UUID, float] = {}
        self._touch_lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None

    def authenticate(self, token: str) -> Found | None:
        if not token.startswith(KEY_PREFIX) or len(token) > 200:
            return None
        with self.engine.connect() as connection:
            row = credentials.virtual_key(connection, hash_key(token))
            if row is None or row.revoked_at is not None:
                return None
            if row.status != "active":
                return Refused(f"Account '{row.account_name}' is {row.status}: its keys serve nothing until the config makes it active again.", "account_suspended"), None
            if user_suspended(connection, row.account_id, row.user_email, row.domain):
                where = f"the {row.domain} directory" if row.domain else "every directory that lists them"
                return Refused(f"User {row.user_email} is suspended in {where} of account '{row.account_name}': their keys serve nothing until the config makes them active again.", "user_suspended"), None
            allowed = allowed_roles(connection, row.account_id, row.user_email, row.domain)
            if allowed is None:
                return None
            role = row.role if row.role in allowed else self._default_role(connection, row.account_id, row.user_email)
            suspended = suspended_domains(connection, row.account_id, row.user_email) if row.domain is None else frozenset()
            if suspended >= frozenset(DOMAINS):  # an admin suspended in both: no domain is left (an empty tuple would mean all)
                return Refused(f"User {row.user_email} is suspended in every directory of account '{row.account_name}': their keys serve nothing until the config makes them active again.", "user_suspended"), None
        self._touch(row.id, row.last_used_at)
        context = RequestContext(
            account_id=row.account_id,
            account_name=row.account_name,
            auth_provider="virtual_key",
            roles=(role,),
            product_domains=(row.domain,) if row.domain else tuple(d for d in DOMAINS if d not in suspended),
            user_email=row.user_email,
            key_domain=row.domain,
            agent_name=row.agent_name,
        )
        return context, None

    @staticmethod
    def _default_role(connection: Connection, account_id: uuid.UUID, email: str) -> str:
        return credentials.admin_role(connection, account_id, email) or "end_user"

    def _touch(self, key_id: uuid.UUID, last_used_at: dt.datetime | None) -> None:
        """Record use at most once a minute per key, in a background writer thread, so a request
        never waits on a write (or on SQLite's write lock held by an apply)."""
        now = time.time()
        if last_used_at is not None and now - last_used_at.timestamp() < TOUCH_INTERVAL_SECONDS:
            return
        with self._touch_lock:
            if now - self._touched.get(key_id, 0.0) < TOUCH_INTERVAL_SECONDS:
                return
            self._touched[key_id] = now
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cockpit-key-touch")
            self._writer.submit(self._write_touch, key_id)

    def _write_touch(self, key_id: uuid.UUID) -> None:
        try:
            with write_transaction(self.engine) as connection:
                credentials.touch_key(connection, key_id, dt.datetime.now(dt.timezone.utc))
        except SQLAlchemyError as exc:
            log.warning("could not record the use of key %s: %s", key_id, exc)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None


@dataclass(frozen=True)
class ZitadelAuthSettings:
    """How Zitadel tokens are verified at run time (issuer, JWKS, audience, account claims), from
    the environment."""

    issuer: str | None
    enabled: bool
    jwks_uri: str | None = None
    audience: str | None = None
    account_id_claims: tuple[str, ...] = DEFAULT_ACCOUNT_ID_CLAIMS
    super_admin_roles: tuple[str, ...] = DEFAULT_SUPER_ADMIN_ROLES
    min_refetch_seconds: float = 10.0
    fetch: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ZitadelAuthSettings:
        def get(name: str) -> str | None:
            return (environ.get(name) or "").strip() or None

        issuer = get("ZITADEL_ISSUER") or get("ZITADEL_ISSUER_URL")
        enabled_flag = get("ZITADEL_ENABLED")
        enabled = enabled_flag.lower() in TRUTHY if enabled_flag else issuer is not None
        return cls(
            issuer=issuer.rstrip("/") if issuer else None,
            enabled=enabled and issuer is not None,
            jwks_uri=get("ZITADEL_JWKS_URI"),
            audience=get("ZITADEL_AUDIENCE"),
            account_id_claims=_csv(get("ZITADEL_ACCOUNT_ID_CLAIMS")) or DEFAULT_ACCOUNT_ID_CLAIMS,
            super_admin_roles=_csv(get("ZITADEL_SUPER_ADMIN_ROLES")) or DEFAULT_SUPER_ADMIN_ROLES,
        )


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


class ZitadelBackend:
    """A Zitadel JWT, verified against the issuer's JWKS, its claims mapped by `cockpit.server.claims`.

    The account comes from the account id claim (a name or an id); roles are translated to
    base roles with that account's role prefix and mappings. An unknown account gives no
    account. Super admins (by role or claim) keep their roles as they are. Anyone else is
    refused (`Refused`) in a suspended account, or when the directories suspend their e-mail
    everywhere they list it (`cockpit.keys.user_suspended`); a directory that suspends them
    drops its domain from `product_domains`.
    """

    def __init__(self, settings: ZitadelAuthSettings, accounts: AccountFinder, engine: Engine | None = None) -> None:
        assert settings.issuer is not None
        self.settings = settings
        self.accounts = accounts
        self.engine = engine
        self.jwt = JwtSettings(settings.issuer, settings.jwks_uri, settings.audience)
        self.jwks = JwksCache(self.jwt, min_refetch_seconds=settings.min_refetch_seconds, fetch=settings.fetch)

    def authenticate(self, token: str) -> Found | None:
        if not jwt_shaped(token):
            return None
        try:
            claims = verify(token, self.jwt, self.jwks)
        except InvalidToken as exc:
            log.info("Zitadel token refused: %s", exc)
            return None
        mapped = map_claims(claims, self.settings.account_id_claims, self.settings.super_admin_roles)
        if mapped.is_super_admin:  # rare: only then are the tenants' role keys worth a look
            mapped = map_claims(claims, self.settings.account_id_claims, self.settings.super_admin_roles, self.accounts.tenant_role_keys())
        account = self.accounts.find(mapped.account) if mapped.account else None
        expires_at = float(claims["exp"]) + self.jwt.leeway
        domains = mapped.domains
        if account is not None and not mapped.is_super_admin:
            if account.status != "active":
                return Refused(f"Account '{account.name}' is {account.status}: it gets no service until the config makes it active again.", "account_suspended"), expires_at
            if mapped.email and self.engine is not None:
                email = mapped.email.strip().lower()
                with self.engine.connect() as connection:
                    if user_suspended(connection, account.id, email):
                        return Refused(f"User {email} is suspended in account '{account.name}': they get no service until the config makes them active again.", "user_suspended"), expires_at
                    suspended = suspended_domains(connection, account.id, email)
                if suspended:
                    domains = tuple(d for d in (domains or DOMAINS) if d not in suspended)
                    if not domains:
                        return Refused(f"User {email} is suspended in account '{account.name}' for every domain their token allows: they get no service there until the config makes them active again.", "user_suspended"), expires_at
        roles = mapped.roles if mapped.is_super_admin or account is None else base_roles(mapped.roles, account.zitadel)
        context = RequestContext(
            account_id=account.id if account else None,
            account_name=account.name if account else None,
            is_super_admin=mapped.is_super_admin,
            auth_provider="zitadel",
            roles=roles,
            scopes=mapped.scopes,
            product_domains=domains,
            user_email=mapped.email,
            subject=mapped.subject,
        )
        return context, expires_at
