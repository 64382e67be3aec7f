"""FastAPI dependencies shared by the routes: the caller's context and a database connection."""

from __future__ import annotations

from typing import Iterator

from fastapi import Request
from sqlalchemy.engine import Connection

from cockpit.runtime.context import EMPTY, SCOPE_KEY, RequestContext


def context(request: Request) -> RequestContext:
    return request.scope.get(SCOPE_KEY, EMPTY)


def connection(request: Request) -> Iterator[Connection]:
    """A read-only use of the app's engine for the length of one request."""
    with request.app.state.engine.connect() as conn:
        yield conn
