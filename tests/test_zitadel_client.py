"""ZitadelClient, its auth and settings, against a fake Zitadel that follows zitadel-api.md.

`MiniZitadel` below is a stand-in for Zitadel (not for our code) until the shared fake in
`tests/fakes/zitadel.py` exists: an `httpx.MockTransport` handler speaking the documented v1 wire
format (camelCase, zero values omitted, uint64 as strings, the v1 error shape, 409/400/404
semantics) and the OAuth token endpoint.
"""

from __future__ import annotations

import base64
import json
import itertools
from collections import deque
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import pytest

from cockpit.zitadel import (
    MANAGEMENT_SCOPE,
    ClientCredentialsAuth,
    PersonalAccessTokenAuth,
    ProjectRole,
    ZitadelAuthError,
    ZitadelBadRequest,
    ZitadelClient,
    ZitadelConfigError,
    ZitadelError,
    ZitadelNotFound,
    ZitadelRateLimited,
    ZitadelSettings,
    ZitadelUnavailable,
)
from cockpit.zitadel.errors import error_from_response

BASE = "https://id.acme.example"
ORG = "318846152861990913"
PROJECT = "318846153012985857"
PAT = "pat-SECRET-7f3a9c"
CLIENT_ID = "cockpit-sa"
CLIENT_SECRET = "cs-SECRET-91b2e"


def _error(status: int, code: int, text: str, error_id: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "code": code,
            "message": f"{text} ({error_id})",
            "details": [
                {"@type": "type.googleapis.com/zitadel.v1.ErrorDetail", "id": error_id, "message": text}
            ],
        },
    )


class MiniZitadel:
    """Just enough of Zitadel's v1 management API and token endpoint, per the contract."""

    def __init__(self) -> None:
        self.ids = itertools.count(318850000000000001)
        self.projects = {PROJECT: {"name": "app", "org": ORG}}
        self.roles: dict[str, dict[str, dict[str, str]]] = {PROJECT: {}}
        self.grants: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.valid_tokens = {PAT}
        self.issued: list[str] = []
        self.token_lifetime = 43199
        self.requests: list[httpx.Request] = []
        self.failures: deque[httpx.Response] = deque()
        self.fail_paths: str | None = None  # only fail requests whose path contains this

    # knobs -------------------------------------------------------------------------------

    def fail_next(self, *statuses: int, headers: dict[str, str] | None = None, path: str | None = None) -> None:
        self.fail_paths = path
        for status in statuses:
            code = {429: 8, 500: 13, 503: 14, 504: 4, 400: 3, 403: 7}.get(status, 2)
            self.failures.append(
                httpx.Response(status, json={"code": code, "message": f"injected ({status})"}, headers=headers)
            )

    def add_user(self, email: str, *, state: str = "USER_STATE_ACTIVE", user_name: str | None = None) -> str:
        user_id = str(next(self.ids))
        self.users[user_id] = {
            "id": user_id,
            "state": state,
            "userName": user_name or email,
            "human": {"email": {"email": email, "isEmailVerified": True}},
        }
        return user_id

    def add_grant(self, user_id: str, role_keys: list[str]) -> str:
        grant_id = str(next(self.ids))
        self.grants[grant_id] = {"userId": user_id, "projectId": PROJECT, "roleKeys": role_keys, "org": ORG}
        return grant_id

    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/oauth/v2/token"]

    # transport ---------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.failures and (self.fail_paths is None or self.fail_paths in path):
            return self.failures.popleft()
        if path == "/oauth/v2/token":
            return self._token(request)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.valid_tokens:
            return httpx.Response(401, json={"code": 16, "message": "Errors.Token.Invalid (AUTH-7fs1e)"})
        if request.headers.get("x-zitadel-orgid", ORG) != ORG:
            return _error(403, 7, "No matching permissions found", "AUTH-5mWD2")
        body = json.loads(request.content) if request.content else {}
        if "query" in body and int(body["query"].get("limit", 100)) > 1000:
            return httpx.Response(400, json={"code": 3, "message": "invalid ListQuery.Limit"})
        return self._route(request.method, [unquote(p) for p in path.split("/")[1:]], body)

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        basic = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if basic != f"Basic {expected}":
            return httpx.Response(401, json={"error": "invalid_client", "error_description": "client authentication failed"})
        if form.get("grant_type") != ["client_credentials"]:
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        scopes = set(form.get("scope", [""])[0].split())
        if not {"openid", "urn:zitadel:iam:org:project:id:zitadel:aud"} <= scopes:
            return httpx.Response(400, json={"error": "invalid_scope"})
        token = f"at-{len(self.issued) + 1}"
        self.issued.append(token)
        self.valid_tokens.add(token)
        return httpx.Response(200, json={"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime})

    def _page(self, items: list[dict[str, Any]], query: dict[str, Any]) -> httpx.Response:
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
        details: dict[str, Any] = {"processedSequence": "15"}
        if items:
            details["totalResult"] = str(len(items))
        body: dict[str, Any] = {"details": details}
        if items[offset : offset + limit]:
            body["result"] = items[offset : offset + limit]
        return httpx.Response(200, json=body)

    def _route(self, method: str, parts: list[str], body: dict[str, Any]) -> httpx.Response:
        done = {"details": {"sequence": "2", "resourceOwner": ORG}}
        match (method, parts):
            case ("GET", ["management", "v1", "projects", project_id]):
                if project_id not in self.projects:
                    return _error(404, 5, "Project not found", "PROJECT-3M9sd")
                return httpx.Response(200, json={"project": {"id": project_id, "name": "app", "state": "PROJECT_STATE_ACTIVE"}})
            case ("POST", ["management", "v1", "projects", project_id, "roles", "_search"]):
                roles = [
                    {"key": key, **({"displayName": r["displayName"]} if r["displayName"] else {}), **({"group": r["group"]} if r["group"] else {})}
                    for key, r in sorted(self.roles.get(project_id, {}).items())
                ]
                for q in body.get("queries", []):
                    if "keyQuery" in q:
                        roles = [r for r in roles if r["key"] == q["keyQuery"]["key"]]
                return self._page(roles, body.get("query", {}))
            case ("POST", ["management", "v1", "projects", project_id, "roles", "_bulk"]):
                keys = [r["key"].lower() for r in body["roles"]]
                existing = {k.lower() for k in self.roles[project_id]}
                if len(set(keys)) != len(keys) or existing & set(keys):
                    return _error(409, 6, "Role already exists", "V3-DKcYh")
                for r in body["roles"]:
                    self.roles[project_id][r["key"]] = {"displayName": r["displayName"], "group": r.get("group", "")}
                return httpx.Response(200, json=done)
            case ("POST", ["management", "v1", "projects", project_id, "roles"]):
                if body["roleKey"].lower() in {k.lower() for k in self.roles[project_id]}:
                    return _error(409, 6, "Role already exists", "V3-DKcYh")
                self.roles[project_id][body["roleKey"]] = {"displayName": body["displayName"], "group": body.get("group", "")}
                return httpx.Response(200, json=done)
            case ("PUT", ["management", "v1", "projects", project_id, "roles", key]):
                role = self.roles[project_id].get(key)
                if role is None:
                    return _error(404, 5, "Role doesn't exist", "COMMAND-vv8M9")
                new = {"displayName": body["displayName"], "group": body.get("group", "")}
                if new == role:
                    return _error(400, 9, "No changes", "COMMAND-5M0cs")
                self.roles[project_id][key] = new
                return httpx.Response(200, json=done)
            case ("DELETE", ["management", "v1", "projects", project_id, "roles", key]):
                if self.roles[project_id].pop(key, None) is None:
                    return _error(404, 5, "Role doesn't exist", "COMMAND-m9vMf")
                return httpx.Response(200, json=done)
            case ("POST", ["management", "v1", "users", "grants", "_search"]):
                grants = [
                    {"id": gid, "userId": g["userId"], "projectId": g["projectId"], "roleKeys": g["roleKeys"],
                     "state": "USER_GRANT_STATE_ACTIVE", "orgId": g["org"]}
                    for gid, g in sorted(self.grants.items())
                ]
                for q in body.get("queries", []):
                    if "projectIdQuery" in q:
                        grants = [g for g in grants if g["projectId"] == q["projectIdQuery"]["projectId"]]
                    if "userIdQuery" in q:
                        grants = [g for g in grants if g["userId"] == q["userIdQuery"]["userId"]]
                return self._page(grants, body.get("query", {}))
            case ("POST", ["management", "v1", "users", user_id, "grants"]):
                for g in self.grants.values():
                    if g["userId"] == user_id and g["projectId"] == body["projectId"]:
                        return _error(409, 6, "User grant already exists", "V3-DKcYh")
                roles = {k.lower() for k in self.roles.get(body["projectId"], {})}
                if any(k.lower() not in roles for k in body["roleKeys"]):
                    return _error(400, 9, "Errors.Project.Role.NotFound", "COMMAND-mm9F4")
                grant_id = str(next(self.ids))
                self.grants[grant_id] = {"userId": user_id, "projectId": body["projectId"], "roleKeys": body["roleKeys"], "org": ORG}
                return httpx.Response(200, json={"userGrantId": grant_id, **done})
            case ("GET", ["management", "v1", "users", user_id, "grants", grant_id]):
                g = self.grants.get(grant_id)
                if g is None or g["userId"] != user_id:
                    return _error(404, 5, "User grant not found", "COMMAND-3M9sd")
                return httpx.Response(200, json={"userGrant": {"id": grant_id, "userId": user_id, "projectId": g["projectId"], "roleKeys": g["roleKeys"]}})
            case ("PUT", ["management", "v1", "users", user_id, "grants", grant_id]):
                g = self.grants.get(grant_id)
                if g is None or g["userId"] != user_id:
                    return _error(404, 5, "User grant not found", "COMMAND-3M9sd")
                if body["roleKeys"] == g["roleKeys"]:
                    return _error(400, 9, "User grant has not been changed", "COMMAND-Rs8fy")
                roles = {k.lower() for k in self.roles.get(g["projectId"], {})}
                if any(k.lower() not in roles for k in body["roleKeys"]):
                    return _error(400, 9, "Errors.Project.Role.NotFound", "COMMAND-mm9F4")
                g["roleKeys"] = body["roleKeys"]
                return httpx.Response(200, json=done)
            case ("DELETE", ["management", "v1", "users", user_id, "grants", grant_id]):
                g = self.grants.get(grant_id)
                if g is None or g["userId"] != user_id:
                    return _error(404, 5, "User grant not found", "COMMAND-1My0t")
                del self.grants[grant_id]
                return httpx.Response(200, json=done)
            case ("POST", ["management", "v1", "users", "_search"]):
                users = [u for _, u in sorted(self.users.items())]
                for q in body.get("queries", []):
                    users = [u for u in users if self._user_matches(u, q)]
                return self._page(users, body.get("query", {}))
        return httpx.Response(404, json={"code": 5, "message": "Not Found"})

    def _user_matches(self, user: dict[str, Any], query: dict[str, Any]) -> bool:
        email = user["human"]["email"]["email"]
        if "inUserEmailsQuery" in query:
            return email in query["inUserEmailsQuery"]["userEmails"]
        if "emailQuery" in query:
            q = query["emailQuery"]
            if q.get("method") == "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE":
                return email.lower() == q["emailAddress"].lower()
            return email == q["emailAddress"]
        if "orQuery" in query:
            return any(self._user_matches(user, q) for q in query["orQuery"]["queries"])
        raise AssertionError(f"the mini fake does not know {query}")


@pytest.fixture
def fake() -> MiniZitadel:
    return MiniZitadel()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pat_client(fake: MiniZitadel, clock: Clock, **options: Any) -> ZitadelClient:
    return ZitadelClient(
        BASE, PersonalAccessTokenAuth(PAT), transport=fake.transport(), org_id=ORG,
        sleep=clock.sleep, clock=clock, **options,
    )


def cc_auth(clock: Clock, secret: str = CLIENT_SECRET) -> ClientCredentialsAuth:
    return ClientCredentialsAuth(f"{BASE}/oauth/v2/token", CLIENT_ID, secret, clock=clock)


# --- paging ---------------------------------------------------------------------------------


def test_grants_are_read_in_pages_of_1000(fake: MiniZitadel, clock: Clock) -> None:
    for n in range(2500):
        fake.add_grant(str(900000000000000000 + n), ["end_user"])
    client = pat_client(fake, clock)

    grants = client.list_user_grants(PROJECT)

    assert len(grants) == 2500 and len({g.id for g in grants}) == 2500
    assert client.requests_made == 3
    offsets = [json.loads(r.content)["query"] for r in fake.requests]
    assert offsets == [
        {"offset": "0", "limit": 1000, "asc": True},
        {"offset": "1000", "limit": 1000, "asc": True},
        {"offset": "2000", "limit": 1000, "asc": True},
    ]
    assert all(r.headers["x-zitadel-orgid"] == ORG for r in fake.requests)
    assert grants[0].role_keys == ("end_user",) and grants[0].project_id == PROJECT


def test_a_project_with_2000_grants_and_its_roles_reads_in_three_requests(fake: MiniZitadel, clock: Clock) -> None:
    for key in ("acme_account_admin", "acme_end_user"):
        fake.roles[PROJECT][key] = {"displayName": key, "group": ""}
    for n in range(2000):
        fake.add_grant(str(900000000000000000 + n), ["acme_end_user"])
    client = pat_client(fake, clock)

    roles = client.list_project_roles(PROJECT)
    grants = client.list_user_grants(PROJECT)

    assert [r.key for r in roles] == ["acme_account_admin", "acme_end_user"]
    assert len(grants) == 2000
    assert client.requests_made == 3


def test_an_empty_search_omits_result_and_total(fake: MiniZitadel, clock: Clock) -> None:
    client = pat_client(fake, clock)
    assert client.list_project_roles(PROJECT) == []
    assert client.list_user_grants(PROJECT) == []
    assert client.requests_made == 2


# --- retries --------------------------------------------------------------------------------


def test_429_and_503_are_retried_with_backoff_then_succeed(fake: MiniZitadel, clock: Clock) -> None:
    fake.fail_next(429, 503, 504)
    client = pat_client(fake, clock, backoff=0.2)

    assert client.list_project_roles(PROJECT) == []

    assert client.requests_made == 4
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps, start=1):
        step = 0.2 * 2 ** (attempt - 1)
        assert step / 2 <= slept <= step  # exponential, jittered


def test_retry_after_is_honoured(fake: MiniZitadel, clock: Clock) -> None:
    fake.fail_next(429, headers={"Retry-After": "3"})
    client = pat_client(fake, clock)
    client.list_project_roles(PROJECT)
    assert clock.sleeps == [3.0]


def test_retries_are_bounded(fake: MiniZitadel, clock: Clock) -> None:
    fake.fail_next(*[429] * 10)
    client = pat_client(fake, clock, max_attempts=3)
    with pytest.raises(ZitadelRateLimited) as caught:
        client.list_project_roles(PROJECT)
    assert client.requests_made == 3
    assert caught.value.status == 429 and "3 attempts" in str(caught.value)


@pytest.mark.parametrize("status, error", [(400, ZitadelBadRequest), (403, ZitadelAuthError)])
def test_400_and_403_are_not_retried(fake: MiniZitadel, clock: Clock, status: int, error: type) -> None:
    fake.fail_next(status)
    client = pat_client(fake, clock)
    with pytest.raises(error) as caught:
        client.list_user_grants(PROJECT)
    assert client.requests_made == 1 and clock.sleeps == []
    assert caught.value.endpoint == "POST /management/v1/users/grants/_search"


def test_500_is_retried_for_reads_but_not_for_writes(fake: MiniZitadel, clock: Clock) -> None:
    client = pat_client(fake, clock)
    fake.fail_next(500)
    assert client.list_project_roles(PROJECT) == []
    assert client.requests_made == 2

    fake.fail_next(500)
    with pytest.raises(ZitadelUnavailable):
        client.add_project_role(PROJECT, ProjectRole("admin", "Admin"))
    assert client.requests_made == 3 and fake.roles[PROJECT] == {}


def test_network_errors_become_zitadel_unavailable_after_retries(clock: Clock) -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("Connection refused", request=request)

    client = ZitadelClient(BASE, PersonalAccessTokenAuth(PAT), transport=httpx.MockTransport(refuse),
                           sleep=clock.sleep, clock=clock)
    with pytest.raises(ZitadelUnavailable) as caught:
        client.list_project_roles(PROJECT)
    assert len(calls) == 5 and len(clock.sleeps) == 4
    assert not isinstance(caught.value, httpx.HTTPError)
    assert "could not be reached" in str(caught.value) and PAT not in str(caught.value)


def test_a_timeout_is_retried_then_succeeds(fake: MiniZitadel, clock: Clock) -> None:
    first = [True]

    def slow_once(request: httpx.Request) -> httpx.Response:
        if first.pop() if first else False:
            raise httpx.ReadTimeout("timed out", request=request)
        return fake.handle(request)

    client = ZitadelClient(BASE, PersonalAccessTokenAuth(PAT), transport=httpx.MockTransport(slow_once),
                           org_id=ORG, sleep=clock.sleep, clock=clock)
    assert client.list_project_roles(PROJECT) == []
    assert client.requests_made == 2


# --- idempotent writes ----------------------------------------------------------------------


def test_409_on_add_grant_returns_the_existing_id_without_a_duplicate(fake: MiniZitadel, clock: Clock) -> None:
    fake.roles[PROJECT]["end_user"] = {"displayName": "End user", "group": ""}
    existing = fake.add_grant("318850000000000777", ["end_user"])
    client = pat_client(fake, clock)

    grant_id = client.add_user_grant("318850000000000777", PROJECT, ["end_user"])

    assert grant_id == existing
    assert len(fake.grants) == 1
    assert [r.method + " " + r.url.path for r in fake.requests] == [
        "POST /management/v1/users/318850000000000777/grants",
        "POST /management/v1/users/grants/_search",
    ]


def test_add_grant_sends_sorted_keys_and_returns_the_new_id(fake: MiniZitadel, clock: Clock) -> None:
    for key in ("viewer", "admin"):
        fake.roles[PROJECT][key] = {"displayName": key, "group": ""}
    client = pat_client(fake, clock)
    grant_id = client.add_user_grant("318850000000000001", PROJECT, ["viewer", "admin", "viewer"])
    assert fake.grants[grant_id]["roleKeys"] == ["admin", "viewer"]
    assert json.loads(fake.requests[0].content) == {"projectId": PROJECT, "roleKeys": ["admin", "viewer"]}


def test_409_then_search_lag_polls_until_the_grant_shows(fake: MiniZitadel, clock: Clock) -> None:
    fake.roles[PROJECT]["end_user"] = {"displayName": "End user", "group": ""}
    existing = fake.add_grant("318850000000000777", ["end_user"])
    hidden = [2]  # the query side lags the write (zitadel-api.md §6): two searches miss it

    def lagging(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/grants/_search") and hidden[0]:
            hidden[0] -= 1
            fake.requests.append(request)
            return httpx.Response(200, json={"details": {"processedSequence": "1"}})
        return fake.handle(request)

    client = ZitadelClient(BASE, PersonalAccessTokenAuth(PAT), transport=httpx.MockTransport(lagging),
                           org_id=ORG, sleep=clock.sleep, clock=clock)
    assert client.add_user_grant("318850000000000777", PROJECT, ["end_user"]) == existing
    assert len(clock.sleeps) == 2 and len(fake.grants) == 1


def test_a_role_missing_from_the_project_is_a_bad_request(fake: MiniZitadel, clock: Clock) -> None:
    client = pat_client(fake, clock)
    with pytest.raises(ZitadelBadRequest) as caught:
        client.add_user_grant("318850000000000001", PROJECT, ["nope"])
    assert caught.value.grpc_code == 9 and caught.value.error_id == "COMMAND-mm9F4"
    assert fake.grants == {}


def test_update_with_no_changes_is_a_success(fake: MiniZitadel, clock: Clock) -> None:
    fake.roles[PROJECT]["end_user"] = {"displayName": "End user", "group": ""}
    grant_id = fake.add_grant("318850000000000777", ["end_user"])
    client = pat_client(fake, clock)

    client.update_user_grant("318850000000000777", grant_id, ["end_user"])

    assert client.requests_made == 1
    assert fake.grants[grant_id]["roleKeys"] == ["end_user"]


def test_update_to_an_unknown_role_still_fails(fake: MiniZitadel, clock: Clock) -> None:
    fake.roles[PROJECT]["end_user"] = {"displayName": "End user", "group": ""}
    grant_id = fake.add_grant("318850000000000777", ["end_user"])
    client = pat_client(fake, clock)
    with pytest.raises(ZitadelBadRequest) as caught:
        client.update_user_grant("318850000000000777", grant_id, ["ghost"])
    assert caught.value.error_id == "COMMAND-mm9F4"


def test_update_no_change_without_a_known_error_id_is_confirmed_by_a_re_read(clock: Clock) -> None:
    fake = MiniZitadel()
    fake.roles[PROJECT]["end_user"] = {"displayName": "End user", "group": ""}
    grant_id = fake.add_grant("318850000000000777", ["end_user"])

    def other_wording(request: httpx.Request) -> httpx.Response:
        response = fake.handle(request)
        if response.status_code == 400:  # a server whose error ids we do not know
            return httpx.Response(400, json={"code": 9, "message": "Keine Änderungen (X-1)"})
        return response

    client = ZitadelClient(BASE, PersonalAccessTokenAuth(PAT), transport=httpx.MockTransport(other_wording),
                           org_id=ORG, sleep=clock.sleep, clock=clock)
    client.update_user_grant("318850000000000777", grant_id, ["end_user"])
    assert [r.method for r in fake.requests] == ["PUT", "GET"]


def test_update_changes_the_roles(fake: MiniZitadel, clock: Clock) -> None:
    for key in ("end_user", "admin"):
        fake.roles[PROJECT][key] = {"displayName": key, "group": ""}
    grant_id = fake.add_grant("318850000000000777", ["end_user"])
    client = pat_client(fake, clock)
    client.update_user_grant("318850000000000777", grant_id, ["end_user", "admin"], project_id=PROJECT)
    assert fake.grants[grant_id]["roleKeys"] == ["admin", "end_user"]


def test_removing_a_missing_grant_is_a_success(fake: MiniZitadel, clock: Clock) -> None:
    grant_id = fake.add_grant("318850000000000777", ["end_user"])
    client = pat_client(fake, clock)
    assert client.remove_user_grant("318850000000000777", grant_id) is True
    assert client.remove_user_grant("318850000000000777", grant_id) is False
    assert fake.grants == {}


def test_roles_bulk_add_update_and_remove(fake: MiniZitadel, clock: Clock) -> None:
    client = pat_client(fake, clock)
    created = client.add_project_roles(
        PROJECT, [ProjectRole("acme_admin", "Admin", "ops"), ProjectRole("acme_end_user", "End user")]
    )
    assert created == ["acme_admin", "acme_end_user"]
    assert client.requests_made == 1
    assert json.loads(fake.requests[0].content) == {
        "roles": [
            {"key": "acme_admin", "displayName": "Admin", "group": "ops"},
            {"key": "acme_end_user", "displayName": "End user"},
        ]
    }
    assert client.list_project_roles(PROJECT) == [
        ProjectRole("acme_admin", "Admin", "ops"),
        ProjectRole("acme_end_user", "End user", ""),
    ]

    client.update_project_role(PROJECT, ProjectRole("acme_admin", "Administrators", "ops"))
    client.update_project_role(PROJECT, ProjectRole("acme_admin", "Administrators", "ops"))  # no-op
    assert fake.roles[PROJECT]["acme_admin"] == {"displayName": "Administrators", "group": "ops"}

    assert client.remove_project_role(PROJECT, "acme_end_user") is True
    assert client.remove_project_role(PROJECT, "acme_end_user") is False
    with pytest.raises(ZitadelNotFound):
        client.update_project_role(PROJECT, ProjectRole("acme_end_user", "x"))


def test_bulk_add_after_a_409_falls_back_to_one_by_one(fake: MiniZitadel, clock: Clock) -> None:
    fake.roles[PROJECT]["Acme_Admin"] = {"displayName": "Admin", "group": ""}  # keys are case-insensitive
    client = pat_client(fake, clock)
    created = client.add_project_roles(
        PROJECT, [ProjectRole("acme_admin", "Admin"), ProjectRole("acme_end_user", "End user")]
    )
    assert created == ["acme_end_user"]
    assert sorted(fake.roles[PROJECT]) == ["Acme_Admin", "acme_end_user"]
    assert client.requests_made == 3  # bulk (409), then one add each


# --- authentication -------------------------------------------------------------------------


def test_pat_is_sent_as_bearer(fake: MiniZitadel, clock: Clock) -> None:
    client = pat_client(fake, clock)
    client.list_project_roles(PROJECT)
    assert fake.requests[0].headers["authorization"] == f"Bearer {PAT}"


def test_a_refused_pat_is_an_auth_error_without_the_token(fake: MiniZitadel, clock: Clock) -> None:
    client = ZitadelClient(BASE, PersonalAccessTokenAuth("wrong-" + PAT), transport=fake.transport(),
                           sleep=clock.sleep, clock=clock)
    with pytest.raises(ZitadelAuthError) as caught:
        client.list_project_roles(PROJECT)
    assert caught.value.status == 401 and client.requests_made == 1
    assert PAT not in str(caught.value) and PAT not in repr(caught.value)


def test_client_credentials_token_is_fetched_once_and_cached(fake: MiniZitadel, clock: Clock) -> None:
    auth = cc_auth(clock)
    client = ZitadelClient(BASE, auth, transport=fake.transport(), org_id=ORG, sleep=clock.sleep, clock=clock)

    client.list_project_roles(PROJECT)
    client.list_user_grants(PROJECT)

    token_requests = [r for r in fake.requests if r.url.path == "/oauth/v2/token"]
    assert len(token_requests) == 1 and client.requests_made == 3
    form = parse_qs(token_requests[0].content.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": [MANAGEMENT_SCOPE]}
    assert token_requests[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert all(r.headers["authorization"] == "Bearer at-1" for r in fake.api_requests())


def test_client_credentials_token_is_refreshed_shortly_before_expiry(fake: MiniZitadel, clock: Clock) -> None:
    fake.token_lifetime = 3600
    client = ZitadelClient(BASE, cc_auth(clock), transport=fake.transport(), org_id=ORG, sleep=clock.sleep, clock=clock)
    client.list_project_roles(PROJECT)
    clock.now += 3600 - 61  # still inside the lifetime minus a minute
    client.list_project_roles(PROJECT)
    assert fake.issued == ["at-1"]
    clock.now += 2  # within the last minute: refresh before Zitadel would refuse it
    client.list_project_roles(PROJECT)
    assert fake.issued == ["at-1", "at-2"]


def test_client_credentials_refresh_once_on_401_and_retry_once(fake: MiniZitadel, clock: Clock) -> None:
    client = ZitadelClient(BASE, cc_auth(clock), transport=fake.transport(), org_id=ORG, sleep=clock.sleep, clock=clock)
    client.list_project_roles(PROJECT)
    fake.valid_tokens.discard("at-1")  # revoked server-side before its expiry

    client.list_project_roles(PROJECT)

    assert fake.issued == ["at-1", "at-2"]
    paths = [r.url.path for r in fake.requests]
    assert paths == [
        "/oauth/v2/token", "/management/v1/projects/318846153012985857/roles/_search",
        "/management/v1/projects/318846153012985857/roles/_search",  # 401 with at-1
        "/oauth/v2/token",
        "/management/v1/projects/318846153012985857/roles/_search",  # retried with at-2
    ]


def test_a_second_401_after_refresh_is_final(fake: MiniZitadel, clock: Clock) -> None:
    def always_401(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v2/token":
            return fake.handle(request)
        fake.requests.append(request)
        return httpx.Response(401, json={"code": 16, "message": "Errors.Token.Invalid (AUTH-7fs1e)"})

    client = ZitadelClient(BASE, cc_auth(clock), transport=httpx.MockTransport(always_401), sleep=clock.sleep, clock=clock)
    with pytest.raises(ZitadelAuthError) as caught:
        client.list_project_roles(PROJECT)
    assert caught.value.status == 401 and caught.value.code_name == "UNAUTHENTICATED"
    assert client.requests_made == 4  # token, call, token, call: no loop


def test_token_endpoint_errors_carry_the_oauth_error_not_the_secret(fake: MiniZitadel, clock: Clock) -> None:
    auth = cc_auth(clock, secret="wrong-" + CLIENT_SECRET)
    client = ZitadelClient(BASE, auth, transport=fake.transport(), sleep=clock.sleep, clock=clock)
    with pytest.raises(ZitadelAuthError) as caught:
        client.list_project_roles(PROJECT)
    text = str(caught.value)
    assert "invalid_client: client authentication failed" in text
    assert CLIENT_SECRET not in text and CLIENT_SECRET not in repr(caught.value)
    assert client.requests_made == 1  # a refused secret is not retried
    assert CLIENT_SECRET not in repr(auth) and CLIENT_SECRET not in repr(client)


def test_token_endpoint_503_is_retried(fake: MiniZitadel, clock: Clock) -> None:
    fake.fail_next(503, path="/oauth/v2/token")
    client = ZitadelClient(BASE, cc_auth(clock), transport=fake.transport(), org_id=ORG, sleep=clock.sleep, clock=clock)
    assert client.list_project_roles(PROJECT) == []
    assert client.requests_made == 3 and fake.issued == ["at-1"]


# --- users ----------------------------------------------------------------------------------


def test_emails_are_resolved_in_one_batched_search_and_cached(fake: MiniZitadel, clock: Clock) -> None:
    ids = {email: fake.add_user(email) for email in (f"user{n}@acme.example" for n in range(300))}
    client = pat_client(fake, clock)

    found = client.search_users_by_email(list(ids))

    assert found == ids
    assert client.requests_made == 1
    assert "inUserEmailsQuery" in json.loads(fake.requests[0].content)["queries"][0]
    assert client.search_users_by_email(["user7@acme.example", "USER8@acme.example"]) == {
        "user7@acme.example": ids["user7@acme.example"],
        "USER8@acme.example": ids["user8@acme.example"],
    }
    assert client.requests_made == 1  # cached


def test_unknown_and_differently_cased_emails_cost_one_more_search(fake: MiniZitadel, clock: Clock) -> None:
    alice = fake.add_user("alice@acme.example")
    bob = fake.add_user("Bob@Acme.example")  # stored with capitals; the config says bob@acme.example
    client = pat_client(fake, clock)

    found = client.search_users_by_email(["alice@acme.example", "bob@acme.example", "nobody@acme.example"])

    assert found == {"alice@acme.example": alice, "bob@acme.example": bob}
    assert client.requests_made == 2
    assert client.search_users_by_email(["nobody@acme.example"]) == {}
    assert client.requests_made == 2  # an unknown e-mail is cached too


def test_an_email_shared_by_two_users_prefers_the_active_one(fake: MiniZitadel, clock: Clock) -> None:
    fake.add_user("carol@acme.example", state="USER_STATE_INACTIVE")
    active = fake.add_user("carol@acme.example", user_name="carol")
    client = pat_client(fake, clock)
    assert client.search_users_by_email(["carol@acme.example"]) == {"carol@acme.example": active}


# --- status ---------------------------------------------------------------------------------


def test_check_reports_a_healthy_project(fake: MiniZitadel, clock: Clock) -> None:
    fake.roles[PROJECT]["acme_end_user"] = {"displayName": "End user", "group": ""}
    report = pat_client(fake, clock).check(PROJECT)
    assert report.ok and report.reachable and report.authenticated and report.project_found
    assert report.role_count == 1 and report.project_name == "app"


def test_check_reports_a_missing_project_and_bad_credentials(fake: MiniZitadel, clock: Clock) -> None:
    missing = pat_client(fake, clock).check("999")
    assert missing.reachable and missing.authenticated and not missing.project_found
    assert not missing.ok

    bad = ZitadelClient(BASE, PersonalAccessTokenAuth("nope"), transport=fake.transport(),
                        sleep=clock.sleep, clock=clock).check(PROJECT)
    assert bad.reachable and not bad.authenticated and not bad.project_found


def test_check_reports_an_unreachable_instance(clock: Clock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    report = ZitadelClient(BASE, PersonalAccessTokenAuth(PAT), transport=httpx.MockTransport(refuse),
                           max_attempts=2, sleep=clock.sleep, clock=clock).check(PROJECT)
    assert not report.reachable and not report.ok and "could not be reached" in (report.error or "")


# --- errors ---------------------------------------------------------------------------------


def test_both_error_body_shapes_are_parsed() -> None:
    v1 = error_from_response(
        409,
        json.dumps({"code": 6, "message": "Role already exists (V3-DKcYh)",
                    "details": [{"@type": "type.googleapis.com/zitadel.v1.ErrorDetail", "id": "V3-DKcYh", "message": "Role already exists"}]}).encode(),
        endpoint="POST /x",
    )
    connect = error_from_response(
        409,
        json.dumps({"code": "already_exists", "message": "Role already exists (V3-DKcYh)",
                    "details": [{"type": "zitadel.v1.ErrorDetail", "value": "AAAA"}]}).encode(),
        endpoint="POST /y",
    )
    for error in (v1, connect):
        assert type(error).__name__ == "ZitadelConflict"
        assert error.grpc_code == 6 and error.code_name == "ALREADY_EXISTS"
        assert error.error_id == "V3-DKcYh" and error.message == "Role already exists (V3-DKcYh)"
    html = error_from_response(502, b"<html>Bad Gateway</html>", endpoint="GET /z")
    assert isinstance(html, ZitadelUnavailable) and html.grpc_code is None
    assert str(html) == "<html>Bad Gateway</html> [GET /z, HTTP 502]"


# --- settings -------------------------------------------------------------------------------


def test_settings_are_none_when_nothing_is_configured() -> None:
    assert ZitadelSettings.from_environment({}) is None
    assert ZitadelSettings.from_environment({"ZITADEL_CLIENT_ID": "  "}) is None


def test_settings_with_a_pat() -> None:
    settings = ZitadelSettings.from_environment(
        {"ZITADEL_ISSUER_URL": "https://id.acme.example/", "ZITADEL_MGMT_API_TOKEN": PAT}
    )
    assert settings is not None and settings.base_url == BASE and settings.method == "personal_access_token"
    assert isinstance(settings.auth_for(BASE), PersonalAccessTokenAuth)
    assert PAT not in repr(settings) and PAT not in repr(settings.auth_for(BASE))


def test_settings_with_client_credentials_share_one_auth_per_issuer() -> None:
    settings = ZitadelSettings.from_environment(
        {"ZITADEL_ISSUER_URL": BASE, "ZITADEL_CLIENT_ID": CLIENT_ID, "ZITADEL_CLIENT_SECRET": CLIENT_SECRET}
    )
    assert settings is not None and settings.method == "client_credentials"
    auth = settings.auth_for(BASE)
    assert isinstance(auth, ClientCredentialsAuth) and auth.token_url == f"{BASE}/oauth/v2/token"
    assert settings.auth_for(BASE) is auth
    assert CLIENT_SECRET not in repr(settings) and CLIENT_SECRET not in repr(auth)


def test_an_account_issuer_overrides_the_global_one(fake: MiniZitadel) -> None:
    settings = ZitadelSettings.from_environment({"ZITADEL_ISSUER_URL": BASE, "ZITADEL_MGMT_API_TOKEN": PAT})
    assert settings is not None
    client = settings.client(account_issuer="https://other.example/", org_id=ORG, transport=fake.transport())
    assert client.base_url == "https://other.example"
    client.list_project_roles(PROJECT)
    assert fake.requests[0].url.host == "other.example"


def test_credentials_without_any_issuer_fail_when_an_account_needs_one() -> None:
    settings = ZitadelSettings.from_environment({"ZITADEL_MGMT_API_TOKEN": PAT})
    assert settings is not None and settings.base_url is None
    assert settings.issuer_for("https://id.acme.example") == BASE
    with pytest.raises(ZitadelConfigError, match="ZITADEL_ISSUER_URL"):
        settings.issuer_for(None)


@pytest.mark.parametrize(
    "environ, missing",
    [
        ({"ZITADEL_ISSUER_URL": BASE, "ZITADEL_CLIENT_ID": CLIENT_ID}, "ZITADEL_CLIENT_SECRET"),
        ({"ZITADEL_ISSUER_URL": BASE, "ZITADEL_CLIENT_SECRET": CLIENT_SECRET}, "ZITADEL_CLIENT_ID"),
        ({"ZITADEL_ISSUER_URL": BASE}, "ZITADEL_MGMT_API_TOKEN"),
        ({"ZITADEL_ISSUER_URL": "id.acme.example", "ZITADEL_MGMT_API_TOKEN": PAT}, "ZITADEL_ISSUER_URL"),
    ],
)
def test_partial_configuration_names_the_missing_variable(environ: dict[str, str], missing: str) -> None:
    with pytest.raises(ZitadelConfigError) as caught:
        ZitadelSettings.from_environment(environ)
    message = str(caught.value)
    assert missing in message
    assert CLIENT_SECRET not in message and PAT not in message
    assert isinstance(caught.value, ZitadelError)


def test_no_secret_in_any_error_message(fake: MiniZitadel, clock: Clock) -> None:
    """Every failure path above, collected once more, with both kinds of credentials."""
    errors: list[ZitadelError] = []
    for auth in (PersonalAccessTokenAuth(PAT), cc_auth(clock)):
        client = ZitadelClient(BASE, auth, transport=fake.transport(), org_id=ORG, max_attempts=1,
                               sleep=clock.sleep, clock=clock)
        for status in (400, 403, 429, 500, 503):
            fake.fail_next(status)
            try:
                client.list_user_grants(PROJECT)
            except ZitadelError as exc:
                errors.append(exc)
        for call in (lambda: client.project("999"), lambda: client.update_project_role(PROJECT, ProjectRole("x", "y"))):
            try:
                call()
            except ZitadelError as exc:
                errors.append(exc)
    bad = ZitadelClient(BASE, cc_auth(clock, secret="x" + CLIENT_SECRET), transport=fake.transport(), sleep=clock.sleep, clock=clock)
    with pytest.raises(ZitadelAuthError) as caught:
        bad.list_user_grants(PROJECT)
    errors.append(caught.value)
    assert len(errors) == 15
    for error in errors:
        for secret in (PAT, CLIENT_SECRET, "at-1"):
            assert secret not in str(error) and secret not in repr(error)


# --- concurrency ----------------------------------------------------------------------------


def test_concurrent_requests_share_one_token_fetch(fake: MiniZitadel, clock: Clock) -> None:
    import threading
    import time

    def slow_token(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v2/token":
            time.sleep(0.05)
        return fake.handle(request)

    client = ZitadelClient(BASE, cc_auth(clock), transport=httpx.MockTransport(slow_token), org_id=ORG,
                           sleep=clock.sleep, clock=clock)
    threads = [threading.Thread(target=client.list_project_roles, args=(PROJECT,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.issued == ["at-1"] and client.requests_made == 9


def test_writes_to_one_project_are_serialized(fake: MiniZitadel, clock: Clock) -> None:
    import threading
    import time

    in_flight = {"now": 0, "max": 0}
    guard = threading.Lock()

    def slow_writes(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" or request.url.path.endswith("_search"):
            return fake.handle(request)
        with guard:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        time.sleep(0.02)
        try:
            with guard:
                return fake.handle(request)
        finally:
            with guard:
                in_flight["now"] -= 1

    client = ZitadelClient(BASE, PersonalAccessTokenAuth(PAT), transport=httpx.MockTransport(slow_writes),
                           org_id=ORG, sleep=clock.sleep, clock=clock)
    threads = [
        threading.Thread(target=client.add_project_role, args=(PROJECT, ProjectRole(f"role{n}", f"Role {n}")))
        for n in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.roles[PROJECT]) == 6
    assert in_flight["max"] == 1
