"""What every read endpoint shares: parameters (paging, times, NUL refusal), the domain a
route serves and its admin guard, the refusals it documents, and the response envelopes."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any, Awaitable, Callable, Sequence

from fastapi import HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator
from sqlalchemy.engine import Connection

from cockpit.runtime.context import EMPTY, SCOPE_KEY, RequestContext
from cockpit.runtime.snapshots import AccountSnapshot, snapshot_cache
from cockpit.server.guards import require_domain_admin
from cockpit.store.queries.paging import Page, RowPage

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**63 - 1
"""The largest OFFSET SQLite and PostgreSQL take (a signed 64-bit integer); past it, the page is
empty anyway."""
DOMAINS = ("console", "copilot")


class Refusal(BaseModel):
    """Why a request was refused: FastAPI's `{"detail": "..."}`, in the old system's words."""

    detail: str


REFUSALS = {
    400: "A parameter holds no valid choice, or two parameters disagree; `detail` says which.",
    403: "The caller may not read this: no account context, not an admin of the domain, or not a super admin.",
    404: "The account has nothing by that name or id (another account's ids included).",
}


async def no_nul(request: Request) -> None:
    """A dependency: refuse a path or query parameter holding a NUL character (`%00`). No stored
    name can hold one, and PostgreSQL refuses it in any text parameter (DataError: a 500)."""
    for value in (*request.path_params.values(), *request.query_params.values()):
        if "\x00" in str(value):
            raise HTTPException(400, "Parameters cannot contain NUL characters")


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of the refusals a route answers (400, 403, 404), so the document
    lists every status code the route can send."""
    return {status: {"model": Refusal, "description": REFUSALS[status]} for status in statuses}


def request_context(request: Request) -> RequestContext:
    """The caller's context, read in the event loop: `async` dependencies built on this keep
    a request that needs no database off the thread pool (FastAPI runs plain `def`
    dependencies there)."""
    return request.scope.get(SCOPE_KEY, EMPTY)


def domain_admin(domain: str) -> Callable[..., Awaitable[uuid.UUID]]:
    """A dependency: the caller is an admin of `domain`; gives the context account id."""

    async def guard(request: Request) -> uuid.UUID:
        return require_domain_admin(request_context(request), domain)

    return guard


async def route_domain(request: Request) -> str:
    """A dependency: the domain of a route declared once per domain, from its path
    (`/v1/console/...` or `/v1/copilot/...`)."""
    return request.scope["route"].path.split("/")[2]


async def route_domain_admin(request: Request) -> uuid.UUID:
    """A dependency: the caller is an admin of the route's domain; gives the context account id."""
    return require_domain_admin(request_context(request), await route_domain(request))


def list_snapshot(request: Request, connection: Connection, account_id: uuid.UUID) -> AccountSnapshot:
    """The account's snapshot, checked on `connection` now, for the scope and row ids of a
    list whose rows are read on the same connection."""
    return snapshot_cache(request).current(connection, account_id)


async def page(
    limit: int = Query(DEFAULT_LIMIT, description=f"At most {MAX_LIMIT}; larger values are capped."),
    offset: int = Query(0, ge=0, description="Rows to skip; past the last row the page is empty."),
) -> Page:
    """The `limit`/`offset` of a list request: `limit` defaults to 100 and is capped at 1,000;
    `offset` is capped at `MAX_OFFSET` (a larger one made the database raise: a 500)."""
    return Page(max(1, min(limit, MAX_LIMIT)), min(offset, MAX_OFFSET))


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("a date-time in ISO 8601 (e.g. 2026-01-31T00:00:00Z), not a number")
    return value


Moment = Annotated[dt.datetime, BeforeValidator(_not_a_number)]
"""A time in a query parameter, as the document says (`format: date-time`): ISO 8601, UTC
when no offset is given. Pydantic alone also takes a number as seconds since 1970, so
`since=20240101` meant 1970-08-23; a number is refused (422)."""


def paged(items: Sequence[Any], at: Page, **extra: Any) -> dict[str, Any]:
    """`{"items": [...], "total": N}` of a list held in memory; `total` counts before paging."""
    return {**extra, "items": at.slice(items), "total": len(items)}


def paged_rows(rows: RowPage, items: Callable[[list[Any]], list[Any]]) -> dict[str, Any]:
    """The same envelope for a page of rows read from the store; `items` turns them into JSON."""
    return {"items": items(rows.rows), "total": rows.total}


def item(value: Any) -> dict[str, Any]:
    return {"item": value}


def json_body(content: dict[str, Any]) -> JSONResponse:
    """A body already made of JSON types, sent as is: skips FastAPI's encoding pass, a good
    part of the cost of a hot effective lookup."""
    return JSONResponse(content)


def require_domain(domain: str | None) -> str:
    if domain not in DOMAINS:
        raise HTTPException(400, "domain must be console|copilot")
    return domain


def check_scope_type(scope_type: str, allowed: Sequence[str]) -> None:
    if scope_type not in allowed:
        raise HTTPException(400, f"scope_type must be one of: {','.join(sorted(allowed))}")


def scopes_in(snapshot: AccountSnapshot, domain: str) -> Callable[[str, str], dict[str, Any]]:
    """A row's scope (type, key) → its four fields in `domain`, row ids from the snapshot."""

    def fields(scope_type: str, scope_key: str) -> dict[str, Any]:
        return snapshot.scope_fields(domain, (scope_type, scope_key))

    return fields
