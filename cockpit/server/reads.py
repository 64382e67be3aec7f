"""What every read endpoint shares: paging, envelopes, JSON-ready rows, masked secrets, and the
translation between the database's scopes (natural keys) and the old API's `scope_id` (row ids).

The database stores a scope as (`scope_type`, `scope_key`): the org name, `org/team`, the
user's e-mail, the agent's name, `''` for account and pool. The old API spoke in row ids
(`scope_id`), so responses carry both, and query parameters accept either.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Awaitable, Callable, Iterable, Mapping, Sequence

import sqlalchemy as sa
from fastapi import HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator
from sqlalchemy.engine import Connection

from cockpit.runtime.context import EMPTY, SCOPE_KEY, RequestContext
from cockpit.server.guards import require_domain_admin

from cockpit.store.tables import DIRECTORIES, accounts, agents

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**63 - 1
"""The largest OFFSET SQLite and PostgreSQL take (a signed 64-bit integer); past it, the page is
empty anyway."""
SECRET_MASK = "••••••••"
"""What a secret SSO setting reads as (the old system's eight bullets)."""
MASKED = {"masked": True}
"""What a connection's secrets read as, always."""
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
    """A dependency: the caller is an admin of `domain` (§2.3); gives the context account id."""

    async def guard(request: Request) -> uuid.UUID:
        return require_domain_admin(request_context(request), domain)

    return guard


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    def slice(self, items: Sequence[Any]) -> list[Any]:
        return list(items[self.offset : self.offset + self.limit])


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


def paged_query(connection: Connection, query: sa.Select, at: Page, row: Any) -> dict[str, Any]:
    """The same envelope for a SELECT: one COUNT, one paged SELECT, `row` turns rows into items."""
    total = connection.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = connection.execute(query.limit(at.limit).offset(at.offset)).all()
    return {"items": row(rows) if callable(row) else rows, "total": total}


def item(value: Any) -> dict[str, Any]:
    return {"item": value}


def json_body(content: dict[str, Any]) -> JSONResponse:
    """A body already made of JSON types, sent as is: skips FastAPI's encoding pass, a good
    part of the cost of a hot effective lookup."""
    return JSONResponse(content)


def plain(value: Any) -> Any:
    """A database value as JSON: ids as strings, timestamps in ISO 8601, numbers as floats."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def mask_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """SSO settings with every `*secret*` key that has a value shown as bullets."""
    return {
        key: SECRET_MASK if "secret" in key.lower() and value else value
        for key, value in (settings or {}).items()
    }


def as_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def require_domain(domain: str | None) -> str:
    if domain not in DOMAINS:
        raise HTTPException(400, "domain must be console|copilot")
    return domain


def scope_text(scope_type: str, scope_key: str) -> str:
    """A scope as the config writes it: `account`, `org:research`, `team:research/ml`."""
    return scope_type if not scope_key else f"{scope_type}:{scope_key}"


# -- scopes: natural keys <-> row ids ------------------------------------------------------------

def not_found(domain: str, scope_type: str) -> HTTPException:
    """The old system's words for a scope that is not in the account: `copilot team not found`."""
    return HTTPException(404, f"{domain} {scope_type} not found")


def check_scope_type(scope_type: str, allowed: Sequence[str]) -> None:
    if scope_type not in allowed:
        raise HTTPException(400, f"scope_type must be one of: {','.join(sorted(allowed))}")


def scope_key_of(
    connection: Connection, account_id: uuid.UUID, domain: str, scope_type: str, value: str
) -> str:
    """The natural key of a scope named by its row id or by its natural key; 404 when the
    account has no such scope (another account's id included)."""
    value = value.strip()
    if scope_type in ("account", "pool"):
        if scope_type == "account" and value and value != str(account_id):
            named = sa.select(accounts.c.id).where(accounts.c.id == account_id, accounts.c.name == value)
            if connection.execute(named).first() is None:
                raise HTTPException(400, "account scope_id must match current account_id")
        return ""
    tables = DIRECTORIES[domain]
    by_id = as_uuid(value)
    if scope_type == "org":
        query = sa.select(tables.orgs.c.name).where(tables.orgs.c.account_id == account_id)
        query = query.where(tables.orgs.c.id == by_id if by_id else tables.orgs.c.name == value)
        found = connection.execute(query).scalar()
    elif scope_type == "team":
        teams, orgs = tables.teams, tables.orgs
        query = (
            sa.select(orgs.c.name, teams.c.name)
            .join(orgs, teams.c.org_id == orgs.c.id)
            .where(teams.c.account_id == account_id)
        )
        if by_id:
            query = query.where(teams.c.id == by_id)
        else:
            org, _, team = value.partition("/")
            query = query.where(orgs.c.name == org, teams.c.name == team)
        row = connection.execute(query).first()
        found = f"{row[0]}/{row[1]}" if row else None
    elif scope_type == "user":
        users = tables.users
        query = sa.select(users.c.email).where(users.c.account_id == account_id)
        query = query.where(users.c.id == by_id if by_id else users.c.email == value.lower())
        found = connection.execute(query).scalar()
    elif scope_type == "agent":
        query = sa.select(agents.c.name).where(agents.c.account_id == account_id)
        query = query.where(agents.c.id == by_id if by_id else agents.c.name == value)
        found = connection.execute(query).scalar()
        domain = "copilot"
    else:
        raise HTTPException(400, f"unknown scope_type {scope_type}")
    if found is None:
        raise not_found(domain, scope_type)
    return found


class ScopeIds:
    """Row ids for the scopes of one page of results, found in a few batched queries.

    Collect the scopes with `want`, then `resolve` once, then ask `scope_id` per row.
    """

    def __init__(self, connection: Connection, account_id: uuid.UUID) -> None:
        self.connection = connection
        self.account_id = account_id
        self._wanted: dict[tuple[str, str], set[str]] = {}
        self._ids: dict[tuple[str, str, str], str] = {}

    def want(self, domain: str, scope_type: str, scope_key: str) -> None:
        if scope_type in ("org", "team", "user", "agent"):
            self._wanted.setdefault((domain if scope_type != "agent" else "copilot", scope_type), set()).add(scope_key)

    def resolve(self) -> "ScopeIds":
        for (domain, scope_type), keys in self._wanted.items():
            for chunk in _chunks(sorted(keys), 500):
                for key, row_id in self._lookup(domain, scope_type, chunk):
                    self._ids[(domain, scope_type, key)] = str(row_id)
        self._wanted.clear()
        return self

    def _lookup(self, domain: str, scope_type: str, keys: list[str]) -> Iterable[tuple[str, uuid.UUID]]:
        account_id = self.account_id
        if scope_type == "agent":
            return self.connection.execute(
                sa.select(agents.c.name, agents.c.id).where(agents.c.account_id == account_id, agents.c.name.in_(keys))
            ).all()
        tables = DIRECTORIES[domain]
        if scope_type == "org":
            orgs = tables.orgs
            return self.connection.execute(
                sa.select(orgs.c.name, orgs.c.id).where(orgs.c.account_id == account_id, orgs.c.name.in_(keys))
            ).all()
        if scope_type == "user":
            users = tables.users
            return self.connection.execute(
                sa.select(users.c.email, users.c.id).where(users.c.account_id == account_id, users.c.email.in_(keys))
            ).all()
        teams, orgs = tables.teams, tables.orgs
        wanted = set(keys)
        rows = self.connection.execute(
            sa.select(orgs.c.name, teams.c.name, teams.c.id)
            .join(orgs, teams.c.org_id == orgs.c.id)
            .where(teams.c.account_id == account_id, orgs.c.name.in_({k.partition("/")[0] for k in keys}))
        ).all()
        return [(f"{o}/{t}", i) for o, t, i in rows if f"{o}/{t}" in wanted]

    def scope_id(self, domain: str, scope_type: str, scope_key: str) -> str | None:
        """The old API's `scope_id`: the row id of the org/team/user/agent, the account id for
        `account`, `''` for `pool`; None if the scope names nothing (should not happen)."""
        if scope_type == "account":
            return str(self.account_id)
        if scope_type == "pool":
            return ""
        return self._ids.get((domain if scope_type != "agent" else "copilot", scope_type, scope_key))

    def fields(self, domain: str, scope_type: str, scope_key: str) -> dict[str, Any]:
        """`scope_type`, `scope_id` (old), `scope_key` and `scope` (natural) of one scope."""
        return {
            "scope_type": scope_type,
            "scope_id": self.scope_id(domain, scope_type, scope_key),
            "scope_key": scope_key,
            "scope": scope_text(scope_type, scope_key),
        }


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def scope_grants(
    conn: Connection,
    account_id: uuid.UUID,
    table: sa.Table,
    parent_column: str,
    parent_ids: list[uuid.UUID],
    parent_field: str,
    extra: Callable[[Any], dict[str, Any]] = lambda row: {},
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The copilot-scope grants of agents, connections or listings, by parent id, newest first,
    each with its scope's row id (one query for the grants, a few for the scope ids)."""
    found: dict[uuid.UUID, list[dict[str, Any]]] = {parent: [] for parent in parent_ids}
    if not parent_ids:
        return found
    rows = conn.execute(
        sa.select(table)
        .where(table.c[parent_column].in_(parent_ids))
        .order_by(table.c.created_at.desc(), table.c.scope_type, table.c.scope_key)
    ).all()
    scopes = ScopeIds(conn, account_id)
    for row in rows:
        scopes.want("copilot", row.scope_type, row.scope_key)
    scopes.resolve()
    for row in rows:
        parent = getattr(row, parent_column)
        found[parent].append(
            {
                "id": str(row.id),
                "account_id": str(account_id),
                parent_field: str(parent),
                **scopes.fields("copilot", row.scope_type, row.scope_key),
                **extra(row),
                "created_at": plain(row.created_at),
            }
        )
    return found
