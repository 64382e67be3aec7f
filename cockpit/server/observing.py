"""The outermost middleware: every request counted by route template, method and status, its
whole duration observed (a stream's until its last chunk), a request id for its log lines, and
a server span when tracing is on.

Pure ASGI, like the other middleware, so streams pass through untouched; the only work per
request is two clock reads, one dict lookup and two metric updates (`cockpit.observe.metrics`).
The route label is the template Starlette matched (`/v1/accounts/{account_id}`), never the raw
path, so the number of series stays bounded whatever callers send, and no e-mail address in a path
(the read API takes them) reaches a label or a span; requests refused before routing (limits,
credentials) are labelled `unrouted`.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from cockpit.observe.logs import REQUEST_ID
from cockpit.observe.metrics import record_http
from cockpit.observe.tracing import enabled as tracing_enabled, span

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID_HEADER = b"x-request-id"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def route_of(scope: Any) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unrouted"


def request_id_of(scope: Any) -> str:
    """The caller's `X-Request-Id` when it is a sane token (so a load balancer's id carries
    through), else a fresh one."""
    for name, value in scope.get("headers") or ():
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if VALID_REQUEST_ID.fullmatch(text):
                return text
            break
    return secrets.token_hex(8)


class ObservingMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        token = REQUEST_ID.set(request_id_of(scope))

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        try:
            if tracing_enabled():
                with span(f"HTTP {method}", {"http.request.method": method}) as current:
                    await self.app(scope, receive, sending)
                    current.set_attribute("http.route", route_of(scope))
                    current.set_attribute("http.response.status_code", status)
                    current.update_name(f"{method} {route_of(scope)}")
            else:
                await self.app(scope, receive, sending)
        finally:
            record_http(route_of(scope), method, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)
