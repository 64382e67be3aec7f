"""ZitadelClient, its auth and its settings, against the fake Zitadel on loopback (tests/fakes).

The client runs its real transport over HTTP; faults come from the fake's switches (fail_next,
lost responses, search lag, stop). Time is injected: `Clock` stands in for the client's sleep and
monotonic clock and moves the fake's clock along, so token expiry and search lag follow it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

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
from fakes.zitadel import FakeZitadel

PAT = "pat-SECRET-7f3a9c"
CLIENT_ID = "cockpit-sa"
CLIENT_SECRET = "cs-SECRET-91b2e"
TOKEN_PATH = "/oauth/v2/token"
GRANT_SEARCH = "/management/v1/users/grants/_search"


class Clock:
    """The client's clock and sleep; sleeping also advances the fake's clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.fake: FakeZitadel | None = None

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.fake is not None:
            self.fake.advance(seconds)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeZitadel]:
    with FakeZitadel(token_lifetime=3600) as fake:
        fake.add_pat(PAT)
        fake.add_service_account(CLIENT_ID, CLIENT_SECRET)
        clock.fake = fake
        yield fake


@pytest.fixture
def project(fake: FakeZitadel) -> str:
    return fake.add_project(name="app")


def client_for(
    fake: FakeZitadel, clock: Clock, auth: httpx.Auth | None = None, **options: Any
) -> ZitadelClient:
    options.setdefault("org_id", fake.default_org_id)
    return ZitadelClient(
        fake.url, auth or PersonalAccessTokenAuth(PAT), sleep=clock.sleep, clock=clock, **options
    )


def cc_auth(fake: FakeZitadel, clock: Clock, secret: str = CLIENT_SECRET) -> ClientCredentialsAuth:
    return ClientCredentialsAuth(fake.url + TOKEN_PATH, CLIENT_ID, secret, clock=clock)


def api_calls(fake: FakeZitadel) -> list[tuple[str, str, int]]:
    return [r for r in fake.requests if r[1] != TOKEN_PATH]


class RecordingTransport(httpx.BaseTransport):
    """The real HTTP transport, remembering request bodies (and optionally rewriting answers)."""

    def __init__(self, rewrite: Any = None) -> None:
        self._inner = httpx.HTTPTransport()
        self._rewrite = rewrite
        self.bodies: list[tuple[str, str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        try:
            body: Any = json.loads(content) if content else None
        except ValueError:
            body = content.decode()
        self.bodies.append((request.method, request.url.path, body))
        response = self._inner.handle_request(request)
        if self._rewrite is not None:
            response.read()
            response = self._rewrite(request, response) or response
        return response

    def close(self) -> None:
        self._inner.close()


# --- paging ---------------------------------------------------------------------------------


def seed_grants(fake: FakeZitadel, project: str, count: int, role: str = "acme_end_user") -> None:
    fake.add_role(project, role, "End user")
    for n in range(count):
        fake.add_grant(fake.add_user(f"user{n}@acme.example"), project, [role])


def test_grants_are_read_in_pages_of_1000(fake: FakeZitadel, clock: Clock, project: str) -> None:
    seed_grants(fake, project, 2500)
    transport = RecordingTransport()
    client = client_for(fake, clock, transport=transport)

    grants = client.list_user_grants(project)

    assert len(grants) == 2500 and len({g.id for g in grants}) == 2500
    assert client.requests_made == 3 == fake.count("POST", GRANT_SEARCH)
    assert [body["query"] for _, _, body in transport.bodies] == [
        {"offset": "0", "limit": 1000, "asc": True},
        {"offset": "1000", "limit": 1000, "asc": True},
        {"offset": "2000", "limit": 1000, "asc": True},
    ]
    assert {g.project_id for g in grants} == {project}
    assert grants[0].role_keys == ("acme_end_user",) and grants[0].org_id == fake.default_org_id


def test_a_project_with_2000_grants_and_its_roles_reads_in_three_requests(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    seed_grants(fake, project, 2000)
    fake.add_role(project, "acme_account_admin", "Account admin", group="acme")
    client = client_for(fake, clock)

    roles = client.list_project_roles(project)
    grants = client.list_user_grants(project)

    assert sorted(r.key for r in roles) == ["acme_account_admin", "acme_end_user"]
    assert ProjectRole("acme_account_admin", "Account admin", "acme") in roles
    assert len(grants) == 2000
    assert client.requests_made == 3


def test_empty_searches_omit_result_and_total(fake: FakeZitadel, clock: Clock, project: str) -> None:
    client = client_for(fake, clock)
    assert client.list_project_roles(project) == []
    assert client.list_user_grants(project) == []
    assert client.requests_made == 2


def test_the_org_header_scopes_v1_reads(fake: FakeZitadel, clock: Clock, project: str) -> None:
    fake.add_role(project, "acme_end_user")
    other = fake.add_org("Other")
    elsewhere = client_for(fake, clock, org_id=other)  # a wrong org: an empty list, not an error
    assert elsewhere.list_project_roles(project) == []
    assert client_for(fake, clock).list_project_roles(project) != []


# --- retries --------------------------------------------------------------------------------


def test_429_503_504_are_retried_with_jittered_backoff(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    fake.fail_next(1, 429)
    fake.fail_next(1, 503)
    fake.fail_next(1, 504)
    client = client_for(fake, clock, backoff=0.2)

    assert client.list_project_roles(project) == []

    assert client.requests_made == 4
    assert [status for _, _, status in fake.requests] == [429, 503, 504, 200]
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps, start=1):
        step = 0.2 * 2 ** (attempt - 1)
        assert step / 2 <= slept <= step


def test_retry_after_is_honoured(fake: FakeZitadel, clock: Clock, project: str) -> None:
    fake.fail_next(1, 429, retry_after=3)
    client_for(fake, clock).list_project_roles(project)
    assert clock.sleeps == [3.0]


def test_retries_are_bounded(fake: FakeZitadel, clock: Clock, project: str) -> None:
    fake.fail_next(10, 429)
    client = client_for(fake, clock, max_attempts=3)
    with pytest.raises(ZitadelRateLimited) as caught:
        client.list_project_roles(project)
    assert client.requests_made == 3 and len(clock.sleeps) == 2
    assert caught.value.status == 429 and "after 3 attempts" in str(caught.value)


@pytest.mark.parametrize("status, error", [(400, ZitadelBadRequest), (403, ZitadelAuthError)])
def test_400_and_403_are_not_retried(
    fake: FakeZitadel, clock: Clock, project: str, status: int, error: type
) -> None:
    fake.fail_next(1, status)
    client = client_for(fake, clock)
    with pytest.raises(error) as caught:
        client.list_user_grants(project)
    assert client.requests_made == 1 and clock.sleeps == []
    assert caught.value.status == status and caught.value.endpoint == f"POST {GRANT_SEARCH}"


def test_a_service_account_without_rights_gets_403_once(fake: FakeZitadel, clock: Clock, project: str) -> None:
    fake.add_pat("powerless", orgs=())
    client = client_for(fake, clock, auth=PersonalAccessTokenAuth("powerless"))
    with pytest.raises(ZitadelAuthError) as caught:
        client.list_project_roles(project)
    assert caught.value.status == 403 and caught.value.code_name == "PERMISSION_DENIED"
    assert client.requests_made == 1


def test_500_is_retried_for_reads_but_not_for_writes(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    client = client_for(fake, clock)
    fake.fail_next(1, 500)
    assert client.list_project_roles(project) == []
    assert client.requests_made == 2

    fake.fail_next(1, 500)
    with pytest.raises(ZitadelUnavailable) as caught:
        client.add_project_role(project, ProjectRole("acme_admin", "Admin"))
    assert caught.value.status == 500
    assert client.requests_made == 3 and fake.roles(project) == []


def test_a_lost_response_on_a_write_is_retried_and_its_own_effect_accepted(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    fake.fail_next(1, 503, after_commit=True)  # committed, then the answer is lost
    client = client_for(fake, clock)
    created = client.add_project_roles(project, [ProjectRole("acme_admin", "Admin")])
    assert fake.roles(project) == [{"key": "acme_admin", "displayName": "Admin", "group": ""}]
    # bulk (committed, 503) → bulk again (409) → single add (409: already there)
    assert created == []
    assert [status for _, _, status in fake.requests] == [503, 409, 409]


def test_an_unreachable_zitadel_is_zitadel_unavailable(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    client = client_for(fake, clock, max_attempts=3)
    fake.stop()
    with pytest.raises(ZitadelUnavailable) as caught:
        client.list_project_roles(project)
    assert client.requests_made == 3 and len(clock.sleeps) == 2
    assert "could not be reached" in str(caught.value) and caught.value.status is None
    assert not isinstance(caught.value, httpx.HTTPError)
    assert caught.value.__cause__ is None and PAT not in str(caught.value)

    fake.start()  # back on the same port
    assert client.list_project_roles(project) == []


def test_a_timeout_is_zitadel_unavailable(fake: FakeZitadel, clock: Clock, project: str) -> None:
    fake.delay = 0.3
    client = client_for(fake, clock, timeout=0.05, max_attempts=2)
    with pytest.raises(ZitadelUnavailable, match="did not answer in time"):
        client.list_project_roles(project)
    assert client.requests_made == 2


# --- idempotent writes ----------------------------------------------------------------------


def test_409_on_add_grant_returns_the_existing_id_without_a_duplicate(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    fake.add_role(project, "acme_end_user")
    alice = fake.add_user("alice@acme.example")
    existing = fake.add_grant(alice, project, ["acme_end_user"])
    client = client_for(fake, clock)

    assert client.add_user_grant(alice, project, ["acme_end_user"]) == existing

    assert [g["id"] for g in fake.grants(project)] == [existing]
    assert api_calls(fake) == [
        ("POST", f"/management/v1/users/{alice}/grants", 409),
        ("POST", GRANT_SEARCH, 200),
    ]


def test_a_lost_grant_add_is_retried_and_no_duplicate_is_made(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    fake.add_role(project, "acme_end_user")
    alice = fake.add_user("alice@acme.example")
    fake.fail_next(1, 503, after_commit=True)
    fake.search_lag(seconds=1)  # and the search lags the write (§6)
    client = client_for(fake, clock)

    grant_id = client.add_user_grant(alice, project, ["acme_end_user"])

    assert [g["id"] for g in fake.grants(project)] == [grant_id]
    statuses = [status for _, path, status in fake.requests if path != GRANT_SEARCH]
    assert statuses == [503, 409]
    assert fake.count("POST", GRANT_SEARCH) >= 2  # polled until the grant showed
    assert sum(clock.sleeps) >= 1


def test_add_grant_sends_sorted_unique_keys(fake: FakeZitadel, clock: Clock, project: str) -> None:
    for key in ("viewer", "admin"):
        fake.add_role(project, key)
    alice = fake.add_user("alice@acme.example")
    transport = RecordingTransport()
    grant_id = client_for(fake, clock, transport=transport).add_user_grant(
        alice, project, ["viewer", "admin", "viewer"]
    )
    assert fake.grants(project)[0]["id"] == grant_id
    assert transport.bodies[0][2] == {"projectId": project, "roleKeys": ["admin", "viewer"]}


def test_a_role_missing_from_the_project_is_a_bad_request(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    alice = fake.add_user("alice@acme.example")
    with pytest.raises(ZitadelBadRequest) as caught:
        client_for(fake, clock).add_user_grant(alice, project, ["nope"])
    assert caught.value.grpc_code == 9 and caught.value.error_id == "COMMAND-mm9F4"
    assert fake.grants(project) == []


def test_update_with_no_changes_is_a_success(fake: FakeZitadel, clock: Clock, project: str) -> None:
    fake.add_role(project, "acme_end_user")
    alice = fake.add_user("alice@acme.example")
    grant_id = fake.add_grant(alice, project, ["acme_end_user"])
    client = client_for(fake, clock)

    client.update_user_grant(alice, grant_id, ["acme_end_user"])

    assert api_calls(fake) == [("PUT", f"/management/v1/users/{alice}/grants/{grant_id}", 400)]
    assert fake.grants(project)[0]["roleKeys"] == ["acme_end_user"]


def test_update_changes_the_roles_and_an_unknown_role_still_fails(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    for key in ("acme_end_user", "acme_admin"):
        fake.add_role(project, key)
    alice = fake.add_user("alice@acme.example")
    grant_id = fake.add_grant(alice, project, ["acme_end_user"])
    client = client_for(fake, clock)

    client.update_user_grant(alice, grant_id, ["acme_end_user", "acme_admin"], project_id=project)
    assert fake.grants(project)[0]["roleKeys"] == ["acme_admin", "acme_end_user"]

    with pytest.raises(ZitadelBadRequest) as caught:
        client.update_user_grant(alice, grant_id, ["ghost"])
    assert caught.value.error_id == "COMMAND-mm9F4"


def test_a_no_change_400_with_an_unknown_error_id_is_confirmed_by_a_re_read(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    fake.add_role(project, "acme_end_user")
    alice = fake.add_user("alice@acme.example")
    grant_id = fake.add_grant(alice, project, ["acme_end_user"])

    def other_version(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if response.status_code == 400:  # a server whose error ids we do not know
            body = {"code": 9, "message": "Keine Änderungen (X-1)"}
            return httpx.Response(400, json=body)
        return None

    client = client_for(fake, clock, transport=RecordingTransport(other_version))
    client.update_user_grant(alice, grant_id, ["acme_end_user"])
    assert [(m, s) for m, _, s in api_calls(fake)] == [("PUT", 400), ("GET", 200)]


def test_removing_a_missing_grant_is_a_success(fake: FakeZitadel, clock: Clock, project: str) -> None:
    fake.add_role(project, "acme_end_user")
    alice = fake.add_user("alice@acme.example")
    grant_id = fake.add_grant(alice, project, ["acme_end_user"])
    client = client_for(fake, clock)
    assert client.remove_user_grant(alice, grant_id) is True
    assert client.remove_user_grant(alice, grant_id) is False
    assert fake.grants(project) == []
    assert [s for _, _, s in api_calls(fake)] == [200, 404]


def test_roles_bulk_add_update_and_remove(fake: FakeZitadel, clock: Clock, project: str) -> None:
    transport = RecordingTransport()
    client = client_for(fake, clock, transport=transport)

    created = client.add_project_roles(
        project, [ProjectRole("acme_admin", "Admin", "ops"), ProjectRole("acme_end_user", "End user")]
    )

    assert created == ["acme_admin", "acme_end_user"] and client.requests_made == 1
    assert transport.bodies[0] == (
        "POST",
        f"/management/v1/projects/{project}/roles/_bulk",
        {"roles": [
            {"key": "acme_admin", "displayName": "Admin", "group": "ops"},
            {"key": "acme_end_user", "displayName": "End user"},
        ]},
    )
    assert sorted(client.list_project_roles(project), key=lambda r: r.key) == [
        ProjectRole("acme_admin", "Admin", "ops"),
        ProjectRole("acme_end_user", "End user", ""),
    ]

    client.update_project_role(project, ProjectRole("acme_admin", "Administrators", "ops"))
    client.update_project_role(project, ProjectRole("acme_admin", "Administrators", "ops"))  # no-op
    assert fake.roles(project)[0] == {"key": "acme_admin", "displayName": "Administrators", "group": "ops"}

    assert client.remove_project_role(project, "acme_end_user") is True
    assert client.remove_project_role(project, "acme_end_user") is False
    with pytest.raises(ZitadelNotFound):
        client.update_project_role(project, ProjectRole("acme_end_user", "x"))


def test_bulk_add_after_a_409_falls_back_to_one_by_one(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    fake.add_role(project, "Acme_Admin", "Admin")  # role keys collide case-insensitively
    client = client_for(fake, clock)
    created = client.add_project_roles(
        project, [ProjectRole("acme_admin", "Admin"), ProjectRole("acme_end_user", "End user")]
    )
    assert created == ["acme_end_user"]
    assert sorted(r["key"] for r in fake.roles(project)) == ["Acme_Admin", "acme_end_user"]
    assert [s for _, _, s in fake.requests] == [409, 409, 200]  # bulk, then one add each


def test_concurrent_writes_to_one_project_are_serialized(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    fake.conflict_on_concurrent_writes = True  # the eventstore push conflict of §6.5
    fake.delay = 0.02
    client = client_for(fake, clock)
    threads = [
        threading.Thread(
            target=client.add_project_role, args=(project, ProjectRole(f"role{n}", f"Role {n}"))
        )
        for n in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.roles(project)) == 6
    assert fake.count(status=500) == 0


# --- authentication -------------------------------------------------------------------------


def test_a_refused_pat_is_an_auth_error_without_the_token(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    client = client_for(fake, clock, auth=PersonalAccessTokenAuth("wrong-" + PAT))
    with pytest.raises(ZitadelAuthError) as caught:
        client.list_project_roles(project)
    assert caught.value.status == 401 and caught.value.code_name == "UNAUTHENTICATED"
    assert client.requests_made == 1
    assert PAT not in str(caught.value) and PAT not in repr(caught.value)


def test_client_credentials_token_is_fetched_once_and_cached(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    transport = RecordingTransport()
    client = client_for(fake, clock, auth=cc_auth(fake, clock), transport=transport)

    client.list_project_roles(project)
    client.list_user_grants(project)

    assert fake.count("POST", TOKEN_PATH) == 1 and client.requests_made == 3
    method, path, form = transport.bodies[0]
    assert (method, path) == ("POST", TOKEN_PATH)
    assert dict(httpx.QueryParams(form)) == {"grant_type": "client_credentials", "scope": MANAGEMENT_SCOPE}


def test_client_credentials_token_is_refreshed_shortly_before_expiry(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    client = client_for(fake, clock, auth=cc_auth(fake, clock))  # token lifetime 3,600 s
    client.list_project_roles(project)
    clock.advance(3600 - 61)
    client.list_project_roles(project)
    assert fake.count("POST", TOKEN_PATH) == 1
    clock.advance(2)  # within the last minute: refresh before Zitadel would refuse it
    client.list_project_roles(project)
    assert fake.count("POST", TOKEN_PATH) == 2
    assert fake.count(status=401) == 0


def test_client_credentials_refresh_once_on_401_and_retry_once(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    client = client_for(fake, clock, auth=cc_auth(fake, clock))
    client.list_project_roles(project)
    fake.expire_tokens()  # the server stops accepting the token before its expires_in

    client.list_project_roles(project)

    roles = f"/management/v1/projects/{project}/roles/_search"
    assert fake.requests == [
        ("POST", TOKEN_PATH, 200),
        ("POST", roles, 200),
        ("POST", roles, 401),
        ("POST", TOKEN_PATH, 200),
        ("POST", roles, 200),
    ]


def test_a_401_after_a_refresh_is_final(fake: FakeZitadel, clock: Clock, project: str) -> None:
    def always_401(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.url.path != TOKEN_PATH:
            return httpx.Response(401, json={"code": 16, "message": "Token is invalid (AUTH-7fs1e)"})
        return None

    client = client_for(
        fake, clock, auth=cc_auth(fake, clock), transport=RecordingTransport(always_401)
    )
    with pytest.raises(ZitadelAuthError) as caught:
        client.list_project_roles(project)
    assert caught.value.status == 401
    assert client.requests_made == 4  # token, call, token, call: once, no loop


def test_token_endpoint_errors_carry_the_oauth_error_not_the_secret(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    auth = cc_auth(fake, clock, secret="wrong-" + CLIENT_SECRET)
    client = client_for(fake, clock, auth=auth)
    with pytest.raises(ZitadelAuthError) as caught:
        client.list_project_roles(project)
    assert "invalid_client" in str(caught.value) and caught.value.status == 401
    assert client.requests_made == 1  # a refused secret is not retried
    for text in (str(caught.value), repr(caught.value), repr(auth), repr(client)):
        assert CLIENT_SECRET not in text


def test_token_endpoint_503_is_retried(fake: FakeZitadel, clock: Clock, project: str) -> None:
    fake.fail_next(1, 503, path_prefix=TOKEN_PATH)
    client = client_for(fake, clock, auth=cc_auth(fake, clock))
    assert client.list_project_roles(project) == []
    assert [(p, s) for _, p, s in fake.requests][:2] == [(TOKEN_PATH, 503), (TOKEN_PATH, 200)]
    assert client.requests_made == 3


def test_concurrent_requests_share_one_token_fetch(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    fake.delay = 0.02
    client = client_for(fake, clock, auth=cc_auth(fake, clock))
    threads = [threading.Thread(target=client.list_project_roles, args=(project,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.count("POST", TOKEN_PATH) == 1 and client.requests_made == 9


# --- users ----------------------------------------------------------------------------------


def test_emails_are_resolved_in_one_batched_search_and_cached(fake: FakeZitadel, clock: Clock) -> None:
    ids = {email: fake.add_user(email) for email in (f"user{n}@acme.example" for n in range(300))}
    fake.add_user("someone.else@acme.example")
    transport = RecordingTransport()
    client = client_for(fake, clock, transport=transport)

    assert client.search_users_by_email(list(ids)) == ids

    assert client.requests_made == 1
    assert list(transport.bodies[0][2]["queries"][0]) == ["inUserEmailsQuery"]
    assert client.search_users_by_email(["user7@acme.example", "USER8@acme.example"]) == {
        "user7@acme.example": ids["user7@acme.example"],
        "USER8@acme.example": ids["user8@acme.example"],
    }
    assert client.requests_made == 1  # cached


def test_unknown_and_differently_cased_emails_cost_one_more_search(
    fake: FakeZitadel, clock: Clock
) -> None:
    alice = fake.add_user("alice@acme.example")
    bob = fake.add_user("Bob@Acme.example")  # stored with capitals; the config says bob@acme.example
    client = client_for(fake, clock)

    found = client.search_users_by_email(
        ["alice@acme.example", "bob@acme.example", "nobody@acme.example"]
    )

    assert found == {"alice@acme.example": alice, "bob@acme.example": bob}
    assert client.requests_made == 2
    assert client.search_users_by_email(["nobody@acme.example"]) == {}
    assert client.requests_made == 2  # an unknown e-mail is cached too


def test_an_email_shared_by_two_users_prefers_the_active_one(fake: FakeZitadel, clock: Clock) -> None:
    fake.add_user("carol@acme.example", state="USER_STATE_INACTIVE")
    active = fake.add_user("carol@acme.example", username="carol")
    client = client_for(fake, clock)
    assert client.search_users_by_email(["carol@acme.example"]) == {"carol@acme.example": active}


# --- status ---------------------------------------------------------------------------------


def test_check_reports_a_healthy_project(fake: FakeZitadel, clock: Clock, project: str) -> None:
    fake.add_role(project, "acme_end_user")
    report = client_for(fake, clock, auth=cc_auth(fake, clock)).check(project)
    assert report.ok and report.reachable and report.authenticated and report.authorized
    assert report.project_found and report.project_name == "app" and report.role_count == 1


def test_check_reports_a_missing_project_and_bad_credentials(
    fake: FakeZitadel, clock: Clock, project: str
) -> None:
    missing = client_for(fake, clock).check("999")
    assert missing.reachable and missing.authenticated and not missing.project_found
    assert not missing.ok and missing.error

    bad = client_for(fake, clock, auth=cc_auth(fake, clock, secret="nope")).check(project)
    assert bad.reachable and not bad.authenticated and not bad.project_found
    assert "invalid_client" in (bad.error or "") and "nope" not in (bad.error or "")


def test_check_reports_an_unreachable_instance(fake: FakeZitadel, clock: Clock, project: str) -> None:
    client = client_for(fake, clock, max_attempts=2)
    fake.stop()
    report = client.check(project)
    assert not report.reachable and not report.ok and "could not be reached" in (report.error or "")


# --- errors ---------------------------------------------------------------------------------


def test_both_error_body_shapes_are_parsed() -> None:
    detail = {"@type": "type.googleapis.com/zitadel.v1.ErrorDetail", "id": "V3-DKcYh",
              "message": "Role already exists"}
    v1 = {"code": 6, "message": "Role already exists (V3-DKcYh)", "details": [detail]}
    connect = {"code": "already_exists", "message": "Role already exists (V3-DKcYh)",
               "details": [{"type": "zitadel.v1.ErrorDetail", "value": "AAAA"}]}
    for body in (v1, connect):
        error = error_from_response(409, json.dumps(body).encode(), endpoint="POST /x")
        assert type(error).__name__ == "ZitadelConflict"
        assert error.grpc_code == 6 and error.code_name == "ALREADY_EXISTS"
        assert error.error_id == "V3-DKcYh" and error.message == "Role already exists (V3-DKcYh)"
    html = error_from_response(502, b"<html>Bad Gateway</html>", endpoint="GET /z")
    assert isinstance(html, ZitadelUnavailable) and html.grpc_code is None
    assert str(html) == "<html>Bad Gateway</html> [GET /z, HTTP 502]"


def test_no_secret_in_any_error_message(fake: FakeZitadel, clock: Clock, project: str) -> None:
    errors: list[ZitadelError] = []

    def collect(call: Any) -> None:
        try:
            call()
        except ZitadelError as exc:
            errors.append(exc)

    for auth in (PersonalAccessTokenAuth(PAT), cc_auth(fake, clock)):
        client = client_for(fake, clock, auth=auth, max_attempts=1)
        for status in (400, 403, 429, 500, 503):
            fake.fail_next(1, status)
            collect(lambda: client.list_user_grants(project))
        collect(lambda: client.project("999"))
        collect(lambda: client.update_project_role(project, ProjectRole("x", "y")))
    collect(lambda: client_for(fake, clock, auth=cc_auth(fake, clock, secret="x" + CLIENT_SECRET))
            .list_user_grants(project))
    collect(lambda: client_for(fake, clock, auth=PersonalAccessTokenAuth("x" + PAT))
            .list_user_grants(project))
    fake.stop()
    collect(lambda: client_for(fake, clock, max_attempts=1).list_user_grants(project))

    assert len(errors) == 17
    for error in errors:
        for secret in (PAT, CLIENT_SECRET):
            assert secret not in str(error) and secret not in repr(error)


# --- settings -------------------------------------------------------------------------------


def test_settings_are_none_when_nothing_is_configured() -> None:
    assert ZitadelSettings.from_environment({}) is None
    assert ZitadelSettings.from_environment({"ZITADEL_CLIENT_ID": "  "}) is None


def test_settings_with_a_pat(fake: FakeZitadel, clock: Clock, project: str) -> None:
    settings = ZitadelSettings.from_environment(
        {"ZITADEL_ISSUER_URL": fake.url + "/", "ZITADEL_MGMT_API_TOKEN": PAT}
    )
    assert settings is not None and settings.base_url == fake.url
    assert settings.method == "personal_access_token"
    assert PAT not in repr(settings) and PAT not in repr(settings.auth_for(fake.url))
    with settings.client(org_id=fake.default_org_id) as client:
        assert client.check(project).ok


def test_settings_with_client_credentials_share_one_token_per_issuer(
    fake: FakeZitadel, project: str
) -> None:
    settings = ZitadelSettings.from_environment(
        {"ZITADEL_ISSUER_URL": fake.url, "ZITADEL_CLIENT_ID": CLIENT_ID,
         "ZITADEL_CLIENT_SECRET": CLIENT_SECRET}
    )
    assert settings is not None and settings.method == "client_credentials"
    auth = settings.auth_for(fake.url)
    assert isinstance(auth, ClientCredentialsAuth) and auth.token_url == fake.url + TOKEN_PATH
    assert settings.auth_for(fake.url) is auth
    assert CLIENT_SECRET not in repr(settings) and CLIENT_SECRET not in repr(auth)
    for _ in range(2):  # two accounts on one instance
        with settings.client(org_id=fake.default_org_id) as client:
            client.list_project_roles(project)
    assert fake.count("POST", TOKEN_PATH) == 1


def test_an_account_issuer_overrides_the_global_one(fake: FakeZitadel, project: str) -> None:
    settings = ZitadelSettings.from_environment(
        {"ZITADEL_ISSUER_URL": "https://id.elsewhere.example", "ZITADEL_MGMT_API_TOKEN": PAT}
    )
    assert settings is not None
    with settings.client(account_issuer=fake.url + "/", org_id=fake.default_org_id) as client:
        assert client.base_url == fake.url
        assert client.list_project_roles(project) == []


def test_credentials_without_any_issuer_fail_when_an_account_needs_one() -> None:
    settings = ZitadelSettings.from_environment({"ZITADEL_MGMT_API_TOKEN": PAT})
    assert settings is not None and settings.base_url is None
    assert settings.issuer_for("https://id.acme.example/") == "https://id.acme.example"
    with pytest.raises(ZitadelConfigError, match="ZITADEL_ISSUER_URL"):
        settings.issuer_for(None)


@pytest.mark.parametrize(
    "environ, missing",
    [
        ({"ZITADEL_ISSUER_URL": "https://id.acme.example", "ZITADEL_CLIENT_ID": CLIENT_ID},
         "ZITADEL_CLIENT_SECRET"),
        ({"ZITADEL_ISSUER_URL": "https://id.acme.example", "ZITADEL_CLIENT_SECRET": CLIENT_SECRET},
         "ZITADEL_CLIENT_ID"),
        ({"ZITADEL_ISSUER_URL": "https://id.acme.example"}, "ZITADEL_MGMT_API_TOKEN"),
        ({"ZITADEL_ISSUER_URL": "id.acme.example", "ZITADEL_MGMT_API_TOKEN": PAT},
         "ZITADEL_ISSUER_URL"),
    ],
)
def test_partial_configuration_names_the_missing_variable(
    environ: dict[str, str], missing: str
) -> None:
    with pytest.raises(ZitadelConfigError) as caught:
        ZitadelSettings.from_environment(environ)
    message = str(caught.value)
    assert missing in message
    assert CLIENT_SECRET not in message and PAT not in message
    assert isinstance(caught.value, ZitadelError)
