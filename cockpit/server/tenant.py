"""Tenant context middleware: credential → `RequestContext` in the ASGI scope.

The token comes, first hit wins, from the cookie `token`, the `Authorization` header (`Bearer`
prefix optional) or `x-litellm-api-key`, as in the old system; the cookie only on GET and HEAD:
a browser attaches cookies to a POST that another site's form or `fetch` sends, so a cookie
honoured there would let any page spend a logged-in user's budget (cross-site request forgery).
Backends are tried in order (`cockpit.server.backends`): the master key (super admin), a
virtual key (SHA-256 lookup), a Zitadel JWT (verified against the issuer's JWKS). A token none of
them accepts gives the empty context; a valid credential of a suspended account or user gets a
403 saying so (`Refused`), before any route runs. `X-Account-Id` (an account's name or id) is
read in one place, `_named_account`, and honoured only for super admins: anyone else naming
another account would read it (the old system honoured it for any Zitadel token).

Resolving is fast on the hot path: a token's identity is cached for a few seconds (so a revoked
key stops working within `cache_seconds`), account lookups likewise, and whatever needs the
database or the JWKS runs in a worker thread, once per token however many requests wait for it.
Pure ASGI, so the streaming proxy passes through untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Generic, Hashable, Mapping, TypeVar

import anyio.to_thread
from sqlalchemy.engine import Engine

from cockpit.server.backends import AccountRef, MasterKeyBackend, Refused, VirtualKeyBackend, ZitadelBackend, ZitadelAuthSettings
from cockpit.server.claims import tenant_role_keys
from cockpit.runtime.context import EMPTY, SCOPE_KEY, RequestContext
from cockpit.observe.tracing import span
from cockpit.server.limits import respond
from cockpit.store.queries import credentials

ASGIApp = Callable[[Mapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

CACHE_SECONDS = 5.0
CACHE_ENTRIES = 20_000
PUBLIC_PATHS = frozenset({"/health", "/health/readiness", "/health/liveliness", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
"""Paths that never look at credentials (the old system skipped its health checks likewise)."""
COOKIE_METHODS = frozenset({"GET", "HEAD"})
"""Methods on which the `token` cookie is a credential: those a cross-site page cannot use to act."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING: Any = object()


class TTLCache(Generic[K, V]):
    """A bounded map of values that expire (the oldest loads go first when full); thread-safe,
    and single-flight per key: when many threads miss the same key at once, one loads it and
    the others wait for its answer."""

    def __init__(self, max_entries: int = CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[K, threading.Lock] = {}

    def get(self, key: K, now: float | None = None) -> V:
        """The value, or `_MISSING` when absent or expired."""
        found = self._entries.get(key)
        if found is None or found[0] <= (time.time() if now is None else now):
            return _MISSING
        return found[1]

    def get_or_load(self, key: K, load: Callable[[], tuple[V, float]]) -> V:
        """The cached value, else `load()` → (value, expires_at) stored and returned."""
        value = self.get(key)
        if value is not _MISSING:
            return value
        with self._lock:
            gate = self._loading.setdefault(key, threading.Lock())
        try:
            with gate:
                value = self.get(key)
                if value is _MISSING:
                    value, expires_at = load()
                    self._put(key, value, expires_at)
        finally:
            with self._lock:
                self._loading.pop(key, None)
        return value

    def _put(self, key: K, value: V, expires_at: float) -> None:
        with self._lock:
            self._entries[key] = (expires_at, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class AccountLookup:
    """Accounts by name or id, cached for `cache_seconds` (found or not)."""

    def __init__(self, engine: Engine, cache_seconds: float) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: TTLCache[str, AccountRef | None] = TTLCache(4096)
        self._role_keys: TTLCache[str, frozenset[str]] = TTLCache(1)

    def cached(self, name_or_id: str) -> AccountRef | None:
        """The account if cached; None if cached as unknown; `_MISSING` if not cached."""
        return self._cache.get(name_or_id)

    def find(self, name_or_id: str) -> AccountRef | None:
        return self._cache.get_or_load(name_or_id, lambda: (self._query(name_or_id), time.time() + self.cache_seconds))

    def tenant_role_keys(self) -> frozenset[str]:
        """Every account's produced Zitadel role keys, cached like the accounts: a super-admin
        role among them is not honoured (`cockpit.server.claims`)."""

        def load() -> tuple[frozenset[str], float]:
            with self.engine.connect() as connection:
                settings = credentials.zitadel_settings(connection)
            return tenant_role_keys(settings), time.time() + self.cache_seconds

        return self._role_keys.get_or_load("all", load)

    def _query(self, name_or_id: str) -> AccountRef | None:
        if "\x00" in name_or_id:
            return None  # no name holds one, and PostgreSQL refuses it in a text parameter (a 500)
        with self.engine.connect() as connection:
            row = credentials.account_by_name_or_id(connection, name_or_id)
        return AccountRef(row.id, row.name, row.status, row.zitadel or {}) if row else None


class TenantResolver:
    """Turns a token (and the X-Account-Id header) into a context: the backends decide, this
    class caches and applies the super-admin-only account header."""

    def __init__(
        self,
        engine: Engine,
        master_key: str | None = None,
        zitadel: ZitadelAuthSettings | None = None,
        *,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self.accounts = AccountLookup(engine, cache_seconds)
        self.master = MasterKeyBackend(master_key)
        self.keys = VirtualKeyBackend(engine)
        self.zitadel = ZitadelBackend(zitadel, self.accounts, engine) if zitadel and zitadel.enabled else None
        self.zitadel_settings = zitadel
        self._identities: TTLCache[str, RequestContext | Refused] = TTLCache()

    @classmethod
    def from_environment(cls, engine: Engine, environ: Mapping[str, str], **options: Any) -> TenantResolver:
        master_key = environ.get("COCKPIT_MASTER_KEY") or environ.get("LITELLM_MASTER_KEY") or None
        return cls(engine, master_key, ZitadelAuthSettings.from_environment(environ), **options)

    def cached(self, token: str | None, account_header: str | None) -> RequestContext | Refused | None:
        """The context (or refusal) without blocking, or None when the database or JWKS must be asked."""
        if not token:
            return EMPTY
        identity = self.master.authenticate(token)
        if identity is None:
            identity = self._identities.get(_digest(token))
            if identity is _MISSING:
                return None
        if isinstance(identity, Refused) or not (identity.is_super_admin and account_header):
            return identity
        account = self.accounts.cached(account_header)
        return None if account is _MISSING else _named_account(identity, account)

    def resolve(self, token: str | None, account_header: str | None) -> RequestContext | Refused:
        """The context (or refusal), asking the database or the JWKS when needed (blocking)."""
        if not token:
            return EMPTY
        identity = self.master.authenticate(token)
        if identity is None:
            identity = self._identities.get_or_load(_digest(token), lambda: self._authenticate(token))
        if isinstance(identity, Refused) or not (identity.is_super_admin and account_header):
            return identity
        return _named_account(identity, self.accounts.find(account_header))

    def _authenticate(self, token: str) -> tuple[RequestContext | Refused, float]:
        now = time.time()
        ttl = now + self.cache_seconds
        found = self.keys.authenticate(token)
        if found is None and self.zitadel is not None:
            found = self.zitadel.authenticate(token)
        if found is None:
            return EMPTY, ttl
        context, expires_at = found
        return context, min(ttl, expires_at) if expires_at is not None else ttl

    def close(self) -> None:
        self.keys.close()


def _named_account(identity: RequestContext, account: AccountRef | None) -> RequestContext:
    """A super admin names the account in X-Account-Id; an unknown one means no account."""
    return dataclasses.replace(identity, account_id=account.id if account else None, account_name=account.name if account else None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def request_token(headers: Mapping[bytes, bytes], method: str = "GET") -> str | None:
    """Cookie `token` (GET and HEAD only), else `Authorization` (Bearer optional), else
    `x-api-key` (how Anthropic's SDKs send a key), `api-key` (Azure OpenAI's) or
    `x-litellm-api-key`."""
    cookie = headers.get(b"cookie") if method in COOKIE_METHODS else None
    if cookie:
        for part in cookie.decode("latin-1").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "token" and value.strip():
                return value.strip().strip('"')
    raw = headers.get(b"authorization") or headers.get(b"x-api-key") or headers.get(b"api-key") or headers.get(b"x-litellm-api-key")
    if not raw:
        return None
    scheme, _, rest = raw.decode("latin-1").strip().partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else scheme if not rest else f"{scheme} {rest}".strip()
    return token or None


class TenantMiddleware:
    """Stores the caller's `RequestContext` in `scope[SCOPE_KEY]`; `deps.context` reads it."""

    def __init__(self, app: ASGIApp, resolver: TenantResolver) -> None:
        self.app = app
        self.resolver = resolver

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            if scope["path"].rstrip("/") in PUBLIC_PATHS:
                context = EMPTY
            else:
                with span("cockpit.auth") as current:
                    context = await self._context(scope)
                    current.set_attribute("cockpit.auth.provider", getattr(context, "auth_provider", None) or "none")
            if isinstance(context, Refused):
                await respond(send, context.status, context.message, context.code, close=False)
                return
            scope[SCOPE_KEY] = context
        await self.app(scope, receive, send)

    async def _context(self, scope) -> RequestContext | Refused:
        headers = dict(scope.get("headers") or ())
        token = request_token(headers, scope.get("method", "GET"))
        raw = headers.get(b"x-account-id")
        account = raw.decode("latin-1").strip() or None if raw else None
        context = self.resolver.cached(token, account)
        if context is None:
            context = await anyio.to_thread.run_sync(self.resolver.resolve, token, account)
        return context
