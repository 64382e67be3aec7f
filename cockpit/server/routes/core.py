"""Health and the caller's own context."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from cockpit.server.context import RequestContext
from cockpit.server.deps import context

router = APIRouter()


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "healthy"}


@router.get("/v1/me/context")
def me(ctx: RequestContext = Depends(context)) -> dict[str, object]:
    return ctx.as_me()
