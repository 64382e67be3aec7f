"""The ASGI app of `cockpit serve`: assembly only (middleware order, routers, read-only rule).

Middleware, outermost first: observing (metrics, request id, server span: it sees every
request, refused ones included); request limits (body size, header count, JSON POSTs), so an
oversized request is refused before a credential is looked up; then the tenant context; then
the gateway's fast lane (`cockpit.server.lane`), which hands its POST endpoints their requests
without FastAPI's routing."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Match
from sqlalchemy.engine import Engine

from cockpit import __version__
from cockpit.observe.tracing import configure_tracing, flush_tracing
from cockpit.server.lane import GatewayLane, post_handlers
from cockpit.server.observing import ObservingMiddleware
from cockpit.server.limits import RequestLimitMiddleware, max_body_bytes
from cockpit.server.routes import routers
from cockpit.server.tenant import TenantMiddleware, TenantResolver
from cockpit.store.secrets import SecretBox, SecretKeyError

WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
ALL_METHODS = ["GET", "HEAD", "OPTIONS", *WRITE_METHODS]


def _path_matches(route: object, request: Request) -> bool:
    """Whether `route` serves this path with some method (Starlette's partial match)."""
    matches = getattr(route, "matches", None)
    if matches is None:
        return False
    match, _ = matches(request.scope)
    return match is not Match.NONE


def _openai_error(message: str, code: str) -> dict[str, object]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


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
            flush_tracing()

    app = FastAPI(
        title="Cockpit",
        version=__version__,
        description="Read-only API over the applied state; changes come only through `cockpit apply`.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.resolver = resolver
    app.state.environ = environ
    app.state.box = box or _box_or_none(engine, environ)
    configure_tracing(environ)
    included = routers()
    for router in included:
        app.include_router(router)
    served = [route for router in included for route in router.routes]

    @app.api_route("/{path:path}", methods=ALL_METHODS, include_in_schema=False)
    async def unserved(request: Request, path: str) -> JSONResponse:
        """What no route serves. A path of the read API asked to change something: 405, the
        read-only rule. A gateway path with another method: 405 naming the one it takes.
        Anything else: 404 in OpenAI's error shape, naming the path, so an SDK calling an API
        the gateway does not serve (files, batches, audio, ...) says so instead of guessing."""
        allowed = sorted({method for route in served if _path_matches(route, request) for method in getattr(route, "methods", ())} - {"HEAD"})
        if "GET" in allowed and request.method in WRITE_METHODS:
            return JSONResponse({"detail": "Method Not Allowed: this API is read-only; changes come only through `cockpit apply`"}, status_code=405, headers={"Allow": "GET"})
        if allowed:
            message = f"{request.method} is not served at {request.url.path}; use {' or '.join(allowed)}."
            return JSONResponse(_openai_error(message, "method_not_allowed"), status_code=405, headers={"Allow": ", ".join(allowed)})
        message = f"Unknown request URL: {request.method} {request.url.path}. The gateway serves chat completions, completions, embeddings, responses, messages and models; see /docs for the read API."
        return JSONResponse(_openai_error(message, "unknown_url"), status_code=404)

    async def unmatched(scope, receive, send) -> None:  # paths no route's pattern takes (a newline in them)
        response = await unserved(Request(scope, receive), scope.get("path", ""))
        await response(scope, receive, send)

    app.router.default = unmatched

    app.add_middleware(GatewayLane, lanes=post_handlers(served))
    app.add_middleware(TenantMiddleware, resolver=resolver)
    app.add_middleware(RequestLimitMiddleware, max_body_bytes=body_limit)
    app.add_middleware(ObservingMiddleware)
    return app


def _box_or_none(engine: Engine, environ: Mapping[str, str]) -> SecretBox | None:
    """The secret box the metrics key user labels with; None (user scopes left out) without a
    secret key, which the proxy reports on its own."""
    try:
        return SecretBox.from_environment(engine.url.render_as_string(hide_password=False), environ)
    except SecretKeyError:
        return None
