"""The ASGI app of `cockpit serve`: assembly only (middleware order, routers, read-only rule).

Middleware, outermost first: request limits (body size, header count, JSON POSTs), so an
oversized request is refused before a credential is looked up; then the tenant context."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from cockpit import __version__
from cockpit.server.limits import RequestLimitMiddleware, max_body_bytes
from cockpit.server.routes import routers
from cockpit.server.tenant import TenantMiddleware, TenantResolver
from cockpit.store.secrets import SecretBox

WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


def create_app(engine: Engine, environ: Mapping[str, str], *, resolver: TenantResolver | None = None, box: SecretBox | None = None) -> FastAPI:
    """The app over `engine`; credentials and Zitadel settings come from `environ` unless a
    `resolver` is given (tests tune its cache and JWKS fetching that way). `box` decrypts the
    models' upstream keys for the proxy (by default from `environ`, as the CLI finds it).
    `COCKPIT_MAX_BODY_BYTES` in `environ` bounds request bodies (default 4 MiB).

    At start-up the proxy imports and warms litellm and loads the model catalog, so the first
    call is as fast as the next; at shutdown it writes the ledger rows still queued."""
    body_limit = max_body_bytes(environ)
    resolver = resolver or TenantResolver.from_environment(engine, environ)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from cockpit.proxy.service import start_proxy

        proxy = app.state.proxy = await start_proxy(engine, box, environ)
        try:
            yield
        finally:
            if proxy is not None:
                await proxy.close()
            resolver.close()

    app = FastAPI(
        title="Cockpit",
        version=__version__,
        description="Read-only API over the applied state; changes come only through `cockpit apply`.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.resolver = resolver
    for router in routers():
        app.include_router(router)

    @app.api_route("/v1/{path:path}", methods=WRITE_METHODS, include_in_schema=False)
    async def read_only(request: Request, path: str) -> JSONResponse:
        return JSONResponse({"detail": "Method Not Allowed: this API is read-only; changes come only through `cockpit apply`"}, status_code=405, headers={"Allow": "GET"})

    app.add_middleware(TenantMiddleware, resolver=resolver)
    app.add_middleware(RequestLimitMiddleware, max_body_bytes=body_limit)
    return app
