"""Health and the caller's own context: no guard, any caller.

`/v1/me/context` is the hottest route (clients call it to learn who they are): it reads the
context from the scope and answers a ready JSONResponse, skipping FastAPI's dependency solving
and response validation, which cost more than everything else in the request.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from cockpit.runtime.context import EMPTY, SCOPE_KEY

router = APIRouter(tags=["core"])


class MeContext(BaseModel):
    account_id: str | None
    is_super_admin: bool
    auth_provider: str | None
    roles: list[str]
    scopes: list[str]
    product_domains_allowed: list[str]


class ZitadelStatus(MeContext):
    enabled: bool
    zitadel_configured: bool
    issuer: str | None


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


@router.get("/v1/me/context", response_model=MeContext)
async def me(request: Request) -> JSONResponse:
    """Who the server takes the caller to be."""
    return JSONResponse(request.scope.get(SCOPE_KEY, EMPTY).as_me())


@router.get("/v1/auth/zitadel/status", response_model=ZitadelStatus)
async def zitadel_status(request: Request) -> JSONResponse:
    """Whether Zitadel tokens are verified here, with which issuer, and the caller's context."""
    ctx = request.scope.get(SCOPE_KEY, EMPTY)
    settings = request.app.state.resolver.zitadel_settings
    return JSONResponse({
        "enabled": (ctx.auth_provider or "").startswith("zitadel"),
        "zitadel_configured": bool(settings and settings.enabled),
        "issuer": settings.issuer if settings else None,
        **ctx.as_me(),
    })
