"""Tenant context middleware: credential → `RequestContext` in the ASGI scope.

Pure ASGI, so streaming responses pass through untouched. The token comes from the
`Authorization` header (`Bearer` prefix optional) or `x-litellm-api-key`. The master key gives
super admin, and only a super admin may name the account in `X-Account-Id` (by name or id).
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any, Awaitable, Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cockpit.server.context import EMPTY, SCOPE_KEY, RequestContext
from cockpit.store.tables import accounts

ASGIApp = Callable[[Mapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def bearer_token(headers: Mapping[bytes, bytes]) -> str | None:
    raw = headers.get(b"authorization") or headers.get(b"x-litellm-api-key")
    if not raw:
        return None
    token = raw.decode("latin-1").strip()
    return token[7:].strip() if token.lower().startswith("bearer ") else token


class TenantResolver:
    """Turns a token (and the X-Account-Id header) into a context."""

    def __init__(self, engine: Engine, master_key: str | None) -> None:
        self.engine = engine
        self.master_key = master_key

    def resolve(self, token: str | None, account_header: str | None) -> RequestContext:
        if not token:
            return EMPTY
        if self.master_key and hmac.compare_digest(token.encode(), self.master_key.encode()):
            account_id, name = self.account(account_header) if account_header else (None, None)
            return RequestContext(account_id=account_id, account_name=name, is_super_admin=True, auth_provider="litellm_master_key")
        return EMPTY

    def account(self, name_or_id: str) -> tuple[uuid.UUID | None, str | None]:
        """An account by name or id; (None, None) when there is none."""
        query = sa.select(accounts.c.id, accounts.c.name)
        try:
            query = query.where(sa.or_(accounts.c.name == name_or_id, accounts.c.id == uuid.UUID(name_or_id)))
        except ValueError:
            query = query.where(accounts.c.name == name_or_id)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return (row.id, row.name) if row else (None, None)


class TenantMiddleware:
    def __init__(self, app: ASGIApp, resolver: TenantResolver) -> None:
        self.app = app
        self.resolver = resolver

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            account = headers.get(b"x-account-id")
            scope[SCOPE_KEY] = self.resolver.resolve(bearer_token(headers), account.decode("latin-1") if account else None)
        await self.app(scope, receive, send)
