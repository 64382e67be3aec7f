"""API fuzzing of `cockpit serve` (hardening issue, "API fuzzing"): what it found, pinned."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from cockpit.server.app import create_app
from cockpit.store.engine import create_engine_for

MASTER = "mk-api-fuzz-3c9e51d0b2"

PUBLIC = frozenset({"/health", "/v1/me/context", "/v1/auth/zitadel/status"})
"""Routes that answer 200 to anybody (with the empty context when there is no credential)."""

FOREIGN_TAGS = frozenset({"proxy"})
"""Operations that answer refusals in another shape (the LLM proxy speaks OpenAI's errors)."""


# -- the document declares what the routes answer ---------------------------------------------------


def test_every_guarded_route_documents_its_refusals() -> None:
    """Found by the fuzzer: the routes answered 403, 404 and 400 that the document did not list
    (only 200 and 422), so a client generated from it knew none of the refusals."""
    spec = create_app(sa.create_engine("sqlite://"), {}).openapi()
    refusal = {"$ref": "#/components/schemas/Refusal"}
    assert spec["components"]["schemas"]["Refusal"]["required"] == ["detail"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if FOREIGN_TAGS & set(operation.get("tags", ())):
                continue
            responses = operation["responses"]
            for status, answer in responses.items():
                if status in ("400", "403", "404"):
                    assert answer["content"]["application/json"]["schema"] == refusal, (method, path, status)
            if path not in PUBLIC:
                assert "403" in responses, f"{method.upper()} {path}: guarded, but 403 is not documented"
            if "{" in path:
                assert "404" in responses, f"{method.upper()} {path}: names a row, but 404 is not documented"
    for path, status in {"/v1/copilot/models/effective": "404", "/v1/features/effective": "400", "/v1/audit": "400", "/v1/budgets/copilot/alerts": "404"}.items():
        assert status in spec["paths"][path]["get"]["responses"], path


def test_an_offset_past_every_row_is_an_empty_page_not_a_server_error(migrated_url: str) -> None:
    """Found by the fuzzer: `offset=19346335694792306688` (past a signed 64-bit integer) made
    SQLite raise OverflowError and PostgreSQL `bigint out of range`: a 500."""
    app = create_app(create_engine_for(migrated_url), {"COCKPIT_MASTER_KEY": MASTER})
    client = TestClient(app)
    master = {"Authorization": f"Bearer {MASTER}"}
    for offset in (2**63 - 1, 2**63, 19346335694792306688, 10**40):
        for path in ("/v1/accounts", "/v1/super/models", "/v1/budgets/account-allocation"):
            response = client.get(path, params={"offset": offset}, headers=master)
            assert (response.status_code, response.json()["items"]) == (200, []), (path, offset, response.text)


def test_time_parameters_take_iso_8601_not_numbers() -> None:
    """Found by the fuzzer: `since=1.0971944111657122e-219` was accepted, as pydantic reads a
    number as seconds since 1970; the document says `format: date-time`, and `since=20240101`
    silently meant 1970-08-23."""
    client = TestClient(create_app(sa.create_engine("sqlite://"), {"COCKPIT_MASTER_KEY": MASTER}))
    master = {"Authorization": f"Bearer {MASTER}"}  # no account: a valid request stops at the guard (403)
    for path in ("/v1/audit", "/v1/costs/breakdown"):
        for name in ("since", "until"):
            for number in ("20240101", "1.0971944111657122e-219", "-5", "1700000000"):
                response = client.get(path, params={name: number}, headers=master)
                assert response.status_code == 422 and "not a number" in response.text, (path, name, number, response.text)
            for moment in ("2026-01-31T00:00:00Z", "2026-01-31T08:30:00+02:00", "2026-01-31T00:00:00"):
                response = client.get(path, params={name: moment}, headers=master)
                assert response.status_code == 403, (path, name, moment, response.text)
    spec = client.app.openapi()
    since = next(p for p in spec["paths"]["/v1/audit"]["get"]["parameters"] if p["name"] == "since")
    assert {"type": "string", "format": "date-time"} in since["schema"]["anyOf"]


def test_a_nul_character_in_a_parameter_is_refused_not_a_server_error(migrated_url: str) -> None:
    """Found by fuzzing on PostgreSQL: `%00` in any path or query parameter, or in the master
    key's X-Account-Id, reached PostgreSQL, which refuses NUL in text (DataError: a 500)."""
    app = create_app(create_engine_for(migrated_url), {"COCKPIT_MASTER_KEY": MASTER})
    client = TestClient(app)
    master = {"Authorization": f"Bearer {MASTER}"}
    for path, params in (
        ("/v1/accounts", {"status": "active\x00"}),
        ("/v1/accounts/acme%00", {}),
        ("/v1/budgets/account-allocation", {"account_id": "\x00"}),
        ("/v1/copilot/users", {"email": "a\x00@acme.com"}),
        ("/v1/audit", {"actor": "\x00"}),
    ):
        response = client.get(path, params=params, headers=master)
        assert response.status_code == 400 and "NUL" in response.json()["detail"], (path, response.text)
    # The account header goes through the tenant resolver, before any route.
    context = app.state.resolver.resolve(MASTER, "acme\x00")
    assert context.is_super_admin and context.account_id is None
