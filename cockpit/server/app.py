"""The ASGI app of `cockpit serve`: assembly only (middleware order, routers, read-only rule)."""

from __future__ import annotations

from typing import Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from cockpit import __version__
from cockpit.server.routes import routers
from cockpit.server.tenant import TenantMiddleware, TenantResolver

WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


def create_app(engine: Engine, environ: Mapping[str, str]) -> FastAPI:
    app = FastAPI(title="Cockpit", version=__version__, description="Read-only API over the applied state; changes come only through `cockpit apply`.")
    app.state.engine = engine
    for router in routers():
        app.include_router(router)

    @app.api_route("/v1/{path:path}", methods=WRITE_METHODS, include_in_schema=False)
    async def read_only(request: Request, path: str) -> JSONResponse:
        return JSONResponse({"detail": "Method Not Allowed: this API is read-only; changes come only through `cockpit apply`"}, status_code=405)

    master_key = environ.get("COCKPIT_MASTER_KEY") or environ.get("LITELLM_MASTER_KEY")
    app.add_middleware(TenantMiddleware, resolver=TenantResolver(engine, master_key))
    return app
