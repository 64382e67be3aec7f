"""The gateway's fast lane: its POST endpoints called straight from the middleware stack.

Every LLM call pays for the way to its handler, and FastAPI's is long for a handler that takes
only the request: the router matches the path against every route in turn, then solves the
route's dependencies and wraps it in its exception and exit-stack middleware. The gateway's
handlers need none of that (they take the `Request`, answer every failure themselves and
declare no dependencies), so this middleware, inside the request limits and the tenant
context, finds them by exact path in a dict and calls them. The routes stay declared on the
router, where the OpenAPI document and every other method and path still go; the lane is
derived from them, so a new gateway endpoint needs nothing here.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.responses import Response

from cockpit.server.limits import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]


def post_handlers(routes: Iterable[Any]) -> dict[str, APIRoute]:
    """Path → route, of the POST routes whose handler takes the request alone."""
    return {
        route.path: route for route in routes
        if isinstance(route, APIRoute) and "POST" in route.methods and not route.dependant.dependencies and not route.param_convertors
    }


class GatewayLane:
    def __init__(self, app: ASGIApp, lanes: dict[str, APIRoute]) -> None:
        self.app = app
        self.lanes = lanes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.lanes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # as routing would have set it (metrics label requests by it)
        handler: Handler = route.endpoint
        try:
            response = await handler(Request(scope, receive))
        except HTTPException as exc:  # what FastAPI's own handler would have answered
            response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        await response(scope, receive, send)
