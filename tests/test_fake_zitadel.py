"""The fake Zitadel speaks the contract (/work/shared/reference/zitadel-api.md), over real HTTP.

These tests drive it with plain httpx, as a client would: token flows, OIDC discovery and JWKS,
the Management v1 role/grant/user endpoints, the v2 Connect variants, pagination, error shapes,
and the fault switches (fail_next, fail_ratio, lost responses, search lag, delay).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fakes.zitadel import FakeZitadel, decode_error_detail

ZITADEL_SCOPE = "openid urn:zitadel:iam:org:project:id:zitadel:aud"
PAT = "pat-for-tests"


@pytest.fixture
def fake() -> Iterator[FakeZitadel]:
    with FakeZitadel() as fake:
        fake.add_pat(PAT)
        yield fake


@pytest.fixture
def api(fake: FakeZitadel) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {PAT}"}) as client:
        yield client


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verify_with_jwks(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """What a resource server does: find the key by kid, check the RS256 signature."""
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    assert header["alg"] == "RS256"
    jwk = next(key for key in jwks["keys"] if key["kid"] == header["kid"])
    public_key = rsa.RSAPublicNumbers(
        int.from_bytes(b64url_decode(jwk["e"]), "big"),
        int.from_bytes(b64url_decode(jwk["n"]), "big"),
    ).public_key()
    public_key.verify(
        b64url_decode(signature_b64),
        f"{header_b64}.{claims_b64}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )  # raises InvalidSignature
    return json.loads(b64url_decode(claims_b64))


def roles_path(project_id: str) -> str:
    return f"/management/v1/projects/{project_id}/roles"


def role_keys(api: httpx.Client, project_id: str, **query: Any) -> list[str]:
    body = {"query": {"limit": 1000, "asc": True, **query}}
    response = api.post(f"{roles_path(project_id)}/_search", json=body)
    assert response.status_code == 200, response.text
    return [role["key"] for role in response.json().get("result", [])]


def assert_grpc_error(
    response: httpx.Response, status: int, code: int, error_id: str | None
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    if error_id is None:
        assert "details" not in body
    else:
        assert body["message"].endswith(f" ({error_id})")
        assert body["details"] == [
            {
                "@type": "type.googleapis.com/zitadel.v1.ErrorDetail",
                "id": error_id,
                "message": body["message"].removesuffix(f" ({error_id})"),
            }
        ]


# -- OAuth: client credentials, PAT, JWT profile, expiry ------------------------------------------


def test_client_credentials_with_basic_auth_and_with_form_fields(fake: FakeZitadel) -> None:
    fake.add_service_account("cockpit@acme", "s3cr3t:+/")  # reserved characters, url-encoded
    basic = base64.b64encode(b"cockpit%40acme:s3cr3t%3A%2B%2F").decode()
    response = httpx.post(
        f"{fake.url}/oauth/v2/token",
        data={"grant_type": "client_credentials", "scope": ZITADEL_SCOPE},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 43199
    assert token["access_token"]

    response = httpx.post(
        f"{fake.url}/oauth/v2/token",
        data={
            "grant_type": "client_credentials",
            "scope": ZITADEL_SCOPE,
            "client_id": "cockpit@acme",
            "client_secret": "s3cr3t:+/",
        },
    )
    assert response.status_code == 200
    second = response.json()["access_token"]
    me = httpx.get(
        f"{fake.url}/management/v1/orgs/me", headers={"Authorization": f"Bearer {second}"}
    )
    assert me.status_code == 200
    assert me.json()["org"]["id"] == fake.default_org_id
    assert me.json()["org"]["state"] == "ORG_STATE_ACTIVE"


def test_token_endpoint_errors_use_the_oauth_shape(fake: FakeZitadel) -> None:
    fake.add_service_account("cockpit", "right")
    url = f"{fake.url}/oauth/v2/token"
    data = {"grant_type": "client_credentials", "scope": ZITADEL_SCOPE}

    wrong = httpx.post(url, data=data, auth=("cockpit", "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert "error_description" in wrong.json()

    unknown = httpx.post(url, data=data, auth=("nobody", "right"))
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_client")

    grant = httpx.post(url, data={**data, "grant_type": "password"}, auth=("cockpit", "right"))
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")

    no_openid = httpx.post(
        url,
        data={**data, "scope": "urn:zitadel:iam:org:project:id:zitadel:aud"},
        auth=("cockpit", "right"),
    )
    assert (no_openid.status_code, no_openid.json()["error"]) == (400, "invalid_scope")


def test_token_without_the_zitadel_audience_scope_cannot_call_the_api(fake: FakeZitadel) -> None:
    fake.add_service_account("cockpit", "secret")
    token = httpx.post(
        f"{fake.url}/oauth/v2/token",
        data={"grant_type": "client_credentials", "scope": "openid"},
        auth=("cockpit", "secret"),
    ).json()["access_token"]
    response = httpx.get(
        f"{fake.url}/management/v1/orgs/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert_grpc_error(response, 401, 16, "AUTH-7fs1e")


def test_missing_bad_and_expired_tokens_get_401(fake: FakeZitadel) -> None:
    fake.add_service_account("cockpit", "secret")
    me = f"{fake.url}/management/v1/orgs/me"
    missing = httpx.get(me)
    assert_grpc_error(missing, 401, 16, None)
    assert missing.json()["message"] == "auth header missing"
    assert_grpc_error(
        httpx.get(me, headers={"Authorization": "Bearer nope"}), 401, 16, "AUTH-7fs1e"
    )
    assert_grpc_error(httpx.get(me, headers={"Authorization": "Basic eDp5"}), 401, 16, "AUTH-7fs1e")

    token = httpx.post(
        f"{fake.url}/oauth/v2/token",
        data={"grant_type": "client_credentials", "scope": ZITADEL_SCOPE},
        auth=("cockpit", "secret"),
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(me, headers=headers).status_code == 200
    fake.advance(43199)  # the token's lifetime on the fake's clock
    assert_grpc_error(httpx.get(me, headers=headers), 401, 16, "AUTH-7fs1e")


def test_short_token_lifetime_and_expire_tokens() -> None:
    with FakeZitadel(token_lifetime=60) as fake:
        fake.add_service_account("cockpit", "secret")
        fake.add_pat("forever")
        token = httpx.post(
            f"{fake.url}/oauth/v2/token",
            data={"grant_type": "client_credentials", "scope": ZITADEL_SCOPE},
            auth=("cockpit", "secret"),
        ).json()
        assert token["expires_in"] == 60
        me = f"{fake.url}/management/v1/orgs/me"
        fake.expire_tokens()
        assert (
            httpx.get(me, headers={"Authorization": f"Bearer {token['access_token']}"}).status_code
            == 401
        )
        assert httpx.get(me, headers={"Authorization": "Bearer forever"}).status_code == 200


def test_personal_access_tokens_and_their_expiry(fake: FakeZitadel) -> None:
    me = f"{fake.url}/management/v1/orgs/me"
    assert httpx.get(me, headers={"Authorization": f"Bearer {PAT}"}).status_code == 200
    fake.add_pat("short-lived", expires_at=fake.clock() + 30)
    assert httpx.get(me, headers={"Authorization": "Bearer short-lived"}).status_code == 200
    fake.advance(31)
    assert httpx.get(me, headers={"Authorization": "Bearer short-lived"}).status_code == 401
    assert httpx.get(me, headers={"Authorization": f"Bearer {PAT}"}).status_code == 200


def test_jwt_profile_grant_with_a_key_file(fake: FakeZitadel) -> None:
    user_id = fake.add_service_account("robot", "unused")
    key_file = fake.add_service_account_key("robot")
    assert key_file["type"] == "serviceaccount" and key_file["userId"] == user_id
    key = serialization.load_pem_private_key(key_file["key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = int(time.time())

    def assertion(**overrides: Any) -> str:
        claims = {"iss": user_id, "sub": user_id, "aud": fake.url, "iat": now, "exp": now + 3600}
        claims.update(overrides)
        header = b64url(json.dumps({"alg": "RS256", "kid": key_file["keyId"]}).encode())
        payload = b64url(json.dumps(claims).encode())
        signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{b64url(signature)}"

    url = f"{fake.url}/oauth/v2/token"
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    ok = httpx.post(
        url, data={"grant_type": grant, "assertion": assertion(), "scope": ZITADEL_SCOPE}
    )
    assert ok.status_code == 200, ok.text
    token = ok.json()["access_token"]
    me = httpx.get(
        f"{fake.url}/management/v1/orgs/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert me.status_code == 200

    expired = httpx.post(
        url, data={"grant_type": grant, "assertion": assertion(exp=now - 1), "scope": ZITADEL_SCOPE}
    )
    assert (expired.status_code, expired.json()["error"]) == (400, "invalid_grant")
    wrong_aud = httpx.post(
        url,
        data={
            "grant_type": grant,
            "assertion": assertion(aud="https://elsewhere"),
            "scope": ZITADEL_SCOPE,
        },
    )
    assert (wrong_aud.status_code, wrong_aud.json()["error"]) == (400, "invalid_grant")


def test_service_account_with_jwt_access_tokens(fake: FakeZitadel) -> None:
    user_id = fake.add_service_account("jwt-robot", "secret", jwt_access_tokens=True)
    token = httpx.post(
        f"{fake.url}/oauth/v2/token",
        data={"grant_type": "client_credentials", "scope": ZITADEL_SCOPE},
        auth=("jwt-robot", "secret"),
    ).json()["access_token"]
    claims = verify_with_jwks(token, httpx.get(f"{fake.url}/oauth/v2/keys").json())
    assert (claims["iss"], claims["sub"], claims["client_id"]) == (fake.url, user_id, "jwt-robot")
    assert claims["exp"] - claims["iat"] == 43199
    me = httpx.get(
        f"{fake.url}/management/v1/orgs/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert me.status_code == 200


# -- OIDC discovery, JWKS, signed tokens, introspection -------------------------------------------


def test_discovery_jwks_and_signature_verification(fake: FakeZitadel) -> None:
    config = httpx.get(f"{fake.url}/.well-known/openid-configuration").json()
    assert config["issuer"] == fake.url
    assert config["token_endpoint"] == f"{fake.url}/oauth/v2/token"
    assert config["jwks_uri"] == f"{fake.url}/oauth/v2/keys"
    assert config["introspection_endpoint"] == f"{fake.url}/oauth/v2/introspect"
    assert "client_credentials" in config["grant_types_supported"]
    assert "urn:ietf:params:oauth:grant-type:jwt-bearer" in config["grant_types_supported"]
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]

    jwks = httpx.get(config["jwks_uri"]).json()
    assert [(k["kty"], k["alg"], k["use"], k["e"]) for k in jwks["keys"]] == [
        ("RSA", "RS256", "sig", "AQAB")
    ]

    project = fake.add_project()
    token = fake.sign_token(
        {
            "sub": "318850000000000001",
            "aud": [project],
            f"urn:zitadel:iam:org:project:{project}:roles": {
                "admin": {fake.default_org_id: "acme.localhost"}
            },
        }
    )
    header = json.loads(b64url_decode(token.split(".")[0]))
    assert header["kid"] == jwks["keys"][0]["kid"] == fake.kid
    claims = verify_with_jwks(token, jwks)
    assert claims["iss"] == fake.url
    assert claims["exp"] > claims["iat"]
    assert claims[f"urn:zitadel:iam:org:project:{project}:roles"] == {
        "admin": {fake.default_org_id: "acme.localhost"}
    }

    tampered = token.rsplit(".", 2)
    tampered[1] = b64url(json.dumps({**claims, "sub": "someone-else"}).encode())
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        verify_with_jwks(".".join(tampered), jwks)

    no_exp = verify_with_jwks(fake.sign_token({"sub": "x", "exp": None}), jwks)
    assert "exp" not in no_exp


def test_key_rotation_keeps_old_kids_in_the_jwks(fake: FakeZitadel) -> None:
    old_token = fake.sign_token({"sub": "a"})
    old_kid = fake.kid
    new_kid = fake.rotate_signing_key()
    assert new_kid != old_kid
    jwks = httpx.get(f"{fake.url}/oauth/v2/keys").json()
    assert [key["kid"] for key in jwks["keys"]] == [old_kid, new_kid]
    verify_with_jwks(old_token, jwks)
    new_token = fake.sign_token({"sub": "b"})
    assert json.loads(b64url_decode(new_token.split(".")[0]))["kid"] == new_kid
    verify_with_jwks(new_token, jwks)
    fake.rotate_signing_key(keep_old=False)
    assert len(httpx.get(f"{fake.url}/oauth/v2/keys").json()["keys"]) == 1


def test_user_token_carries_role_claims_from_grants(fake: FakeZitadel) -> None:
    project = fake.add_project()
    fake.add_role(project, "admin")
    fake.add_role(project, "viewer")
    alice = fake.add_user("alice@acme.example")
    fake.add_grant(alice, project, ["admin", "viewer"])
    claims = verify_with_jwks(fake.user_token(alice, project), fake.jwks())
    expected = {
        "admin": {fake.default_org_id: "acme.localhost"},
        "viewer": {fake.default_org_id: "acme.localhost"},
    }
    assert claims["sub"] == alice
    assert claims["aud"] == [project]
    assert claims["urn:zitadel:iam:org:project:roles"] == expected
    assert claims[f"urn:zitadel:iam:org:project:{project}:roles"] == expected


def test_introspection(fake: FakeZitadel) -> None:
    project = fake.add_project()
    fake.add_role(project, "admin")
    user_id = fake.add_service_account("svc", "secret")
    fake.add_grant(user_id, project, ["admin"])
    fake.add_api_app("api-app", "app-secret", project)
    scope = f"{ZITADEL_SCOPE} urn:zitadel:iam:org:project:id:{project}:aud urn:zitadel:iam:org:projects:roles"
    token = httpx.post(
        f"{fake.url}/oauth/v2/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=("svc", "secret"),
    ).json()["access_token"]
    url = f"{fake.url}/oauth/v2/introspect"
    active = httpx.post(url, data={"token": token}, auth=("api-app", "app-secret")).json()
    assert active["active"] is True
    assert active["sub"] == user_id and active["iss"] == fake.url
    assert project in active["aud"]
    assert active[f"urn:zitadel:iam:org:project:{project}:roles"] == {
        "admin": {fake.default_org_id: "acme.localhost"}
    }
    assert httpx.post(url, data={"token": "garbage"}, auth=("api-app", "app-secret")).json() == {
        "active": False
    }
    bad_client = httpx.post(url, data={"token": token}, auth=("api-app", "wrong"))
    assert (bad_client.status_code, bad_client.json()["error"]) == (401, "invalid_client")


# -- project roles (v1) ---------------------------------------------------------------------------


def test_role_add_duplicate_bulk_update_delete(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    path = roles_path(project)

    added = api.post(
        path, json={"roleKey": "admin", "displayName": "Administrator", "group": "ops"}
    )
    assert added.status_code == 200
    details = added.json()["details"]
    assert set(details) == {"sequence", "creationDate", "resourceOwner"}
    assert isinstance(details["sequence"], str) and details["resourceOwner"] == fake.default_org_id

    # Unique per project, case-insensitively; the original case is kept in reads.
    assert_grpc_error(
        api.post(path, json={"roleKey": "ADMIN", "displayName": "x"}), 409, 6, "V3-DKcYh"
    )
    assert api.post(path, json={"roleKey": "admin", "displayName": "x"}).json()["message"] == (
        "Role already exists (V3-DKcYh)"
    )

    bulk = api.post(
        f"{path}/_bulk",
        json={
            "roles": [
                {"key": "viewer", "displayName": "Viewer"},
                {"key": "Editor", "displayName": "Editor"},
            ]
        },
    )
    assert bulk.status_code == 200 and "sequence" in bulk.json()["details"]
    assert role_keys(api, project) == ["admin", "viewer", "Editor"]

    # Bulk add is atomic: one existing key (or a repeated key) fails all, adding nothing.
    conflict = api.post(
        f"{path}/_bulk",
        json={
            "roles": [
                {"key": "new-one", "displayName": "New"},
                {"key": "editor", "displayName": "E"},
            ]
        },
    )
    assert_grpc_error(conflict, 409, 6, "V3-DKcYh")
    repeated = api.post(
        f"{path}/_bulk",
        json={
            "roles": [{"key": "twice", "displayName": "T"}, {"key": "Twice", "displayName": "T"}]
        },
    )
    assert repeated.status_code == 409
    assert [r["key"] for r in fake.roles(project)] == ["admin", "viewer", "Editor"]

    updated = api.put(f"{path}/admin", json={"displayName": "Admins", "group": "ops"})
    assert updated.status_code == 200
    assert "changeDate" in updated.json()["details"]
    assert fake.roles(project)[0] == {"key": "admin", "displayName": "Admins", "group": "ops"}

    # v1: an update without a change is a 400 FAILED_PRECONDITION "No changes".
    no_op = api.put(f"{path}/admin", json={"displayName": "Admins", "group": "ops"})
    assert_grpc_error(no_op, 400, 9, "COMMAND-5M0cs")
    assert no_op.json()["message"] == "No changes (COMMAND-5M0cs)"
    # Omitting group writes "" (both fields are written), so that is a change.
    assert api.put(f"{path}/admin", json={"displayName": "Admins"}).status_code == 200
    assert fake.roles(project)[0]["group"] == ""

    assert_grpc_error(api.put(f"{path}/nope", json={"displayName": "x"}), 404, 5, "COMMAND-vv8M9")
    assert_grpc_error(api.put(f"{path}/admin", json={"displayName": ""}), 400, 3, None)

    assert api.delete(f"{path}/viewer").status_code == 200
    assert_grpc_error(api.delete(f"{path}/viewer"), 404, 5, "COMMAND-m9vMf")
    assert role_keys(api, project) == ["admin", "Editor"]


def test_role_validation_and_unknown_project(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    assert_grpc_error(
        api.post(roles_path(project), json={"roleKey": "", "displayName": "x"}), 400, 3, None
    )
    assert_grpc_error(
        api.post(roles_path(project), json={"roleKey": "k" * 201, "displayName": "x"}), 400, 3, None
    )
    # Upstream checks the project in a precondition: 400 FAILED_PRECONDITION "Project not found".
    missing = api.post(roles_path("123"), json={"roleKey": "a", "displayName": "A"})
    assert_grpc_error(missing, 400, 9, "COMMA-VCnwD")
    assert missing.json()["message"] == "Project not found (COMMA-VCnwD)"
    assert "result" not in api.post(f"{roles_path('123')}/_search", json={}).json()


def test_org_context_scopes_v1_calls(fake: FakeZitadel, api: httpx.Client) -> None:
    other_org = fake.add_org("Other")
    project = fake.add_project(org_id=other_org)
    fake.add_role(project, "admin")
    # Wrong (default) org: the role list is empty, not an error; adding fails the project check.
    assert role_keys(api, project) == []
    assert (
        api.post(roles_path(project), json={"roleKey": "b", "displayName": "B"}).status_code == 400
    )
    headers = {"x-zitadel-orgid": other_org}
    assert (
        api.post(f"{roles_path(project)}/_search", json={}, headers=headers).json()["result"][0][
            "key"
        ]
        == "admin"
    )
    assert (
        api.post(
            roles_path(project), json={"roleKey": "b", "displayName": "B"}, headers=headers
        ).status_code
        == 200
    )

    unknown = api.post(
        f"{roles_path(project)}/_search", json={}, headers={"x-zitadel-orgid": "404"}
    )
    assert_grpc_error(unknown, 403, 7, "AUTH-Bs7Ds")


def test_permissions_403(fake: FakeZitadel) -> None:
    other_org = fake.add_org("Other")
    fake.add_pat("no-rights", orgs=())
    fake.add_pat("org-owner", orgs=[fake.default_org_id])
    me = f"{fake.url}/management/v1/orgs/me"
    assert_grpc_error(
        httpx.get(me, headers={"Authorization": "Bearer no-rights"}), 403, 7, "AUTH-5mWD2"
    )
    owner = {"Authorization": "Bearer org-owner"}
    assert httpx.get(me, headers=owner).status_code == 200
    elsewhere = httpx.get(me, headers={**owner, "x-zitadel-orgid": other_org})
    assert_grpc_error(elsewhere, 403, 7, "AUTH-5mWD2")
    assert elsewhere.json()["message"] == "No matching permissions found (AUTH-5mWD2)"


# -- user grants (v1) -----------------------------------------------------------------------------


def test_grant_add_duplicate_update_delete(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    for key in ("admin", "viewer"):
        fake.add_role(project, key)
    alice = fake.add_user("alice@acme.example")
    grants = f"/management/v1/users/{alice}/grants"

    added = api.post(grants, json={"projectId": project, "roleKeys": ["admin"]})
    assert added.status_code == 200
    grant_id = added.json()["userGrantId"]
    assert grant_id.isdigit() and len(grant_id) == 18
    assert "creationDate" in added.json()["details"]

    assert_grpc_error(
        api.post(grants, json={"projectId": project, "roleKeys": ["viewer"]}), 409, 6, "V3-DKcYh"
    )
    unknown_role = api.post(grants, json={"projectId": project, "roleKeys": ["ghost"]})
    assert_grpc_error(unknown_role, 400, 9, "COMMAND-mm9F4")
    assert unknown_role.json()["message"] == "Errors.Project.Role.NotFound (COMMAND-mm9F4)"
    assert_grpc_error(
        api.post("/management/v1/users/999/grants", json={"projectId": project, "roleKeys": []}),
        400,
        9,
        "COMMAND-uXHNj",
    )

    got = api.get(f"{grants}/{grant_id}").json()["userGrant"]
    assert got["roleKeys"] == ["admin"] and got["projectId"] == project and got["userId"] == alice
    assert got["state"] == "USER_GRANT_STATE_ACTIVE" and got["email"] == "alice@acme.example"

    updated = api.put(f"{grants}/{grant_id}", json={"roleKeys": ["admin", "viewer"]})
    assert updated.status_code == 200 and "changeDate" in updated.json()["details"]
    no_op = api.put(f"{grants}/{grant_id}", json={"roleKeys": ["admin", "viewer"]})
    assert_grpc_error(no_op, 400, 9, "COMMAND-Rs8fy")
    # The unchanged check compares in order, as upstream: a reordering is a change.
    assert (
        api.put(f"{grants}/{grant_id}", json={"roleKeys": ["viewer", "admin"]}).status_code == 200
    )
    assert fake.grants(project)[0]["roleKeys"] == ["viewer", "admin"]
    assert_grpc_error(api.put(f"{grants}/123", json={"roleKeys": []}), 404, 5, "COMMAND-3M9sd")

    assert api.delete(f"{grants}/{grant_id}").status_code == 200
    assert_grpc_error(api.delete(f"{grants}/{grant_id}"), 404, 5, "COMMAND-1My0t")
    assert fake.grants(project) == []


def test_grant_search_filters_and_role_removal_cascade(
    fake: FakeZitadel, api: httpx.Client
) -> None:
    project, other = fake.add_project(), fake.add_project()
    for p in (project, other):
        fake.add_role(p, "admin")
        fake.add_role(p, "viewer")
    alice, bob = fake.add_user("alice@acme.example"), fake.add_user("bob@acme.example")
    fake.add_grant(alice, project, ["admin", "viewer"])
    fake.add_grant(bob, project, ["viewer"])
    fake.add_grant(alice, other, ["admin"])

    def search(*queries: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
        response = api.post(
            "/management/v1/users/grants/_search",
            json={"query": {"limit": 100, "asc": True}, "queries": list(queries)},
        )
        assert response.status_code == 200, response.text
        return [
            (g["userId"], g["projectId"], g.get("roleKeys", []))
            for g in response.json().get("result", [])
        ]

    assert search({"projectIdQuery": {"projectId": project}}) == [
        (alice, project, ["admin", "viewer"]),
        (bob, project, ["viewer"]),
    ]
    assert search(
        {"projectIdQuery": {"projectId": project}}, {"userIdQuery": {"userId": alice}}
    ) == [(alice, project, ["admin", "viewer"])]
    assert [u for u, _, _ in search({"roleKeyQuery": {"roleKey": "admin"}})] == [alice, alice]
    assert (
        len(
            search(
                {
                    "emailQuery": {
                        "email": "BOB@",
                        "method": "TEXT_QUERY_METHOD_STARTS_WITH_IGNORE_CASE",
                    }
                }
            )
        )
        == 1
    )
    bad = api.post("/management/v1/users/grants/_search", json={"queries": [{"unknownQuery": {}}]})
    assert_grpc_error(bad, 400, 3, None)

    # Removing a role removes it from the grants (found via the query side).
    assert api.delete(f"{roles_path(project)}/viewer").status_code == 200
    assert search({"projectIdQuery": {"projectId": project}}) == [
        (alice, project, ["admin"]),
        (bob, project, []),
    ]


# -- users ----------------------------------------------------------------------------------------


def test_user_search_by_email_v1_and_v2(fake: FakeZitadel, api: httpx.Client) -> None:
    alice = fake.add_user("Alice@Acme.example", first_name="Alice", last_name="Doe")
    twin = fake.add_user("alice@acme.example", username="alice-2")  # emails are not unique
    bob = fake.add_user("bob@acme.example")
    other_org = fake.add_org("Other")
    carol = fake.add_user("carol@acme.example", org_id=other_org)

    def v1(*queries: dict[str, Any], **extra: Any) -> list[str]:
        body = {"query": {"limit": 10, "asc": True}, "queries": list(queries), **extra}
        response = api.post("/management/v1/users/_search", json=body)
        assert response.status_code == 200, response.text
        return [user["id"] for user in response.json().get("result", [])]

    ignore_case = "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE"
    assert v1({"emailQuery": {"emailAddress": "alice@acme.example", "method": ignore_case}}) == [
        alice,
        twin,
    ]
    assert v1({"emailQuery": {"emailAddress": "alice@acme.example"}}) == [twin]  # EQUALS is exact
    assert v1(
        {"inUserEmailsQuery": {"userEmails": ["bob@acme.example", "Alice@Acme.example"]}}
    ) == [alice, bob]
    assert v1({"inUserIdsQuery": {"userIds": [bob, carol]}}) == [bob]  # v1 is org-scoped
    assert v1(
        {"typeQuery": {"type": "TYPE_HUMAN"}},
        {"notQuery": {"query": {"inUserIdsQuery": {"userIds": [alice]}}}},
    ) == [twin, bob]
    assert v1(
        {
            "orQuery": {
                "queries": [
                    {"inUserIdsQuery": {"userIds": [bob]}},
                    {"userNameQuery": {"userName": "alice-2"}},
                ]
            }
        }
    ) == [twin, bob]
    humans = v1({"typeQuery": {"type": "TYPE_HUMAN"}})
    assert humans == [alice, twin, bob]  # the PAT's machine user is not human

    user = api.post(
        "/management/v1/users/_search", json={"queries": [{"inUserIdsQuery": {"userIds": [alice]}}]}
    ).json()["result"][0]
    assert user["userName"] == "Alice@Acme.example" and user["state"] == "USER_STATE_ACTIVE"
    assert user["human"]["email"] == {"email": "Alice@Acme.example", "isEmailVerified": True}
    assert user["human"]["profile"]["firstName"] == "Alice"
    assert api.get(f"/management/v1/users/{alice}").json()["user"]["id"] == alice
    assert_grpc_error(api.get(f"/management/v1/users/{carol}"), 404, 5, "QUERY-Dfbg2")

    # v2 (REST and Connect): instance-wide, filtered by the caller's permissions.
    body = {
        "query": {"limit": 10, "asc": True},
        "queries": [{"emailQuery": {"emailAddress": "carol@acme.example"}}],
    }
    for path in ("/v2/users", "/zitadel.user.v2.UserService/ListUsers"):
        response = api.post(path, json=body, headers={"Connect-Protocol-Version": "1"})
        assert response.status_code == 200, response.text
        listed = response.json()
        assert listed["details"]["totalResult"] == "1"
        assert listed["result"][0]["userId"] == carol
        assert listed["result"][0]["human"]["email"] == {
            "email": "carol@acme.example",
            "isVerified": True,
        }
        assert listed["result"][0]["details"]["resourceOwner"] == other_org
    org_query = {"queries": [{"organizationIdQuery": {"organizationId": other_org}}]}
    assert [u["userId"] for u in api.post("/v2/users", json=org_query).json()["result"]] == [carol]
    assert api.get(f"/v2/users/{carol}").json()["user"]["username"] == "carol@acme.example"


# -- pagination and wire conventions -----------------------------------------------------------------


def test_search_pagination_limit_1000_and_1001(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    keys = [f"role-{i:04d}" for i in range(1001)]
    bulk = api.post(
        f"{roles_path(project)}/_bulk", json={"roles": [{"key": k, "displayName": k} for k in keys]}
    )
    assert bulk.status_code == 200

    search = f"{roles_path(project)}/_search"
    first = api.post(search, json={"query": {"offset": "0", "limit": 1000, "asc": True}}).json()
    assert first["details"]["totalResult"] == "1001"
    assert isinstance(first["details"]["processedSequence"], str)
    assert [r["key"] for r in first["result"]] == keys[:1000]
    second = api.post(search, json={"query": {"offset": 1000, "limit": 1000, "asc": True}}).json()
    assert [r["key"] for r in second["result"]] == keys[1000:]
    assert second["details"]["totalResult"] == "1001"

    # Default: limit 100, descending.
    default = api.post(search, json={}).json()["result"]
    assert len(default) == 100 and default[0]["key"] == keys[-1]

    too_big = api.post(search, json={"query": {"limit": 1001}})
    assert_grpc_error(too_big, 400, 3, None)
    assert "less than or equal to 1000" in too_big.json()["message"]
    v2 = api.post(
        "/zitadel.project.v2.ProjectService/ListProjectRoles",
        json={"projectId": project, "pagination": {"limit": 1001}},
    )
    assert (v2.status_code, v2.json()["code"]) == (400, "invalid_argument")


def test_zero_values_are_omitted(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    empty = api.post(f"{roles_path(project)}/_search", json={"query": {"limit": 10}}).json()
    assert "result" not in empty and "totalResult" not in empty["details"]
    assert set(empty["details"]) == {"processedSequence", "viewTimestamp"}
    api.post(roles_path(project), json={"roleKey": "a", "displayName": "A"})  # no group
    role = api.post(f"{roles_path(project)}/_search", json={}).json()["result"][0]
    assert "group" not in role
    assert role["details"]["creationDate"].endswith("Z")


def test_unknown_routes_and_wrong_methods(api: httpx.Client) -> None:
    assert_grpc_error(api.get("/management/v1/nothing-here"), 404, 5, None)
    wrong = api.delete("/management/v1/orgs/me")
    assert (wrong.status_code, wrong.json()["code"]) == (405, 12)
    connect = api.post("/zitadel.project.v2.ProjectService/NoSuchMethod", json={})
    assert (connect.status_code, connect.json()["code"]) == (404, "unimplemented")


# -- v2 Connect services ---------------------------------------------------------------------------


def test_connect_roles_and_authorizations(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    alice = fake.add_user("alice@acme.example")
    service = "/zitadel.project.v2.ProjectService"
    headers = {"Connect-Protocol-Version": "1"}

    added = api.post(
        f"{service}/AddProjectRole",
        json={"projectId": project, "roleKey": "admin", "displayName": "Admin"},
        headers=headers,
    )
    assert added.status_code == 200 and added.json()["creationDate"].endswith("Z")
    duplicate = api.post(
        f"{service}/AddProjectRole",
        json={"projectId": project, "roleKey": "Admin", "displayName": "A"},
        headers=headers,
    )
    assert duplicate.status_code == 409
    body = duplicate.json()
    assert body["code"] == "already_exists" and body["message"] == "Role already exists (V3-DKcYh)"
    assert body["details"][0]["type"] == "zitadel.v1.ErrorDetail"
    assert decode_error_detail(body["details"][0]["value"]) == {
        "id": "V3-DKcYh",
        "message": "Role already exists",
    }

    # v2: an unchanged update and a remove of a missing role succeed.
    same = api.post(
        f"{service}/UpdateProjectRole",
        json={"projectId": project, "roleKey": "admin", "displayName": "Admin"},
    )
    assert same.status_code == 200
    assert (
        api.post(
            f"{service}/RemoveProjectRole", json={"projectId": project, "roleKey": "ghost"}
        ).json()
        == {}
    )
    # ListProjectRoles triggers the projection: it sees the latest writes even with search lag.
    fake.search_lag(5)
    api.post(
        f"{service}/AddProjectRole",
        json={"projectId": project, "roleKey": "viewer", "displayName": "Viewer"},
    )
    listed = api.post(
        f"{service}/ListProjectRoles", json={"projectId": project, "pagination": {"asc": True}}
    ).json()
    assert [r["key"] for r in listed["projectRoles"]] == ["admin", "viewer"]
    assert listed["pagination"] == {"totalResult": "2", "appliedLimit": "100"}
    fake.search_lag(0)

    authorizations = "/zitadel.authorization.v2.AuthorizationService"
    create = {
        "userId": alice,
        "projectId": project,
        "organizationId": fake.default_org_id,
        "roleKeys": ["admin"],
    }
    created = api.post(f"{authorizations}/CreateAuthorization", json=create)
    assert created.status_code == 200, created.text
    authorization_id = created.json()["id"]
    assert (
        api.post(f"{authorizations}/CreateAuthorization", json=create).json()["code"]
        == "already_exists"
    )
    ghost = api.post(
        f"{authorizations}/CreateAuthorization", json={**create, "roleKeys": ["ghost"]}
    )
    assert (ghost.status_code, ghost.json()["code"]) == (400, "failed_precondition")

    unchanged = api.post(
        f"{authorizations}/UpdateAuthorization",
        json={"id": authorization_id, "roleKeys": ["admin"]},
    )
    assert unchanged.status_code == 200
    listed = api.post(
        f"{authorizations}/ListAuthorizations",
        json={"filters": [{"userId": {"id": alice}}, {"projectId": {"id": project}}]},
    ).json()
    assert listed["pagination"]["totalResult"] == "1"
    authorization = listed["authorizations"][0]
    assert authorization["id"] == authorization_id and authorization["state"] == "STATE_ACTIVE"
    assert authorization["roles"] == [{"key": "admin", "displayName": "Admin"}]
    assert authorization["user"]["id"] == alice

    assert (
        api.post(f"{authorizations}/DeleteAuthorization", json={"id": authorization_id}).status_code
        == 200
    )
    assert (
        api.post(f"{authorizations}/DeleteAuthorization", json={"id": authorization_id}).json()
        == {}
    )
    assert fake.grants(project) == []


# -- fault switches -------------------------------------------------------------------------------


def test_fail_next_answers_errors_before_any_write(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    fake.fail_next(2, status=429, retry_after=3)
    for _ in range(2):
        response = api.post(roles_path(project), json={"roleKey": "admin", "displayName": "A"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.json()["code"] == 8
        assert fake.roles(project) == []
    assert (
        api.post(roles_path(project), json={"roleKey": "admin", "displayName": "A"}).status_code
        == 200
    )

    fake.fail_next(1, status=503, after=1)
    assert api.get("/management/v1/orgs/me").status_code == 200
    assert api.get("/management/v1/orgs/me").status_code == 503
    assert api.get("/management/v1/orgs/me").status_code == 200

    fake.fail_next(1, status=500, path_prefix="/oauth/")
    assert api.get("/management/v1/orgs/me").status_code == 200
    token = httpx.post(f"{fake.url}/oauth/v2/token", data={"grant_type": "client_credentials"})
    assert (token.status_code, token.json()["error"]) == (500, "server_error")

    fake.fail_next(1, status=504)
    connect = api.post(
        "/zitadel.project.v2.ProjectService/ListProjectRoles", json={"projectId": project}
    )
    assert (connect.status_code, connect.json()["code"]) == (504, "deadline_exceeded")

    assert fake.count("POST", roles_path(project)) == 3
    assert fake.count(status=429) == 2
    assert fake.requests[-1] == ("POST", "/zitadel.project.v2.ProjectService/ListProjectRoles", 504)


def test_lost_response_after_commit_then_retry_sees_409(
    fake: FakeZitadel, api: httpx.Client
) -> None:
    project = fake.add_project()
    fake.fail_next(1, after_commit=True)
    assert (
        api.post(f"{roles_path(project)}/_search", json={}).status_code == 200
    )  # reads don't count
    lost = api.post(roles_path(project), json={"roleKey": "admin", "displayName": "A"})
    assert lost.status_code == 503
    assert [r["key"] for r in fake.roles(project)] == ["admin"]  # the write happened
    retry = api.post(roles_path(project), json={"roleKey": "admin", "displayName": "A"})
    assert retry.status_code == 409


def test_fail_ratio_is_seeded_and_never_half_writes(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()

    def run(seed: int, prefix: str) -> list[int]:
        fake.fail_ratio(
            0.4, statuses=(429, 503, 500), seed=seed, path_prefix="/management/v1/projects/"
        )
        statuses = []
        for i in range(40):
            response = api.post(
                roles_path(project), json={"roleKey": f"{prefix}-{i}", "displayName": "x"}
            )
            statuses.append(response.status_code)
        fake.fail_ratio(0)
        return statuses

    first = run(1, "first")
    assert set(first) <= {200, 429, 503, 500}
    assert 5 < first.count(200) < 35
    created = {r["key"] for r in fake.roles(project)}
    assert created == {f"first-{i}" for i, status in enumerate(first) if status == 200}
    # Same seed, same sequence of outcomes.
    second = run(1, "second")
    assert second == first
    assert api.get("/management/v1/orgs/me").status_code == 200  # off again


def test_fail_ratio_lost_responses_commit_writes(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    fake.fail_ratio(0.0, seed=3, lost_response_ratio=0.5)
    statuses = [
        api.post(roles_path(project), json={"roleKey": f"k{i}", "displayName": "x"}).status_code
        for i in range(30)
    ]
    fake.fail_ratio(0)
    assert set(statuses) == {200, 503}
    assert len(fake.roles(project)) == 30  # every write was applied, lost answers or not
    assert (
        api.post(roles_path(project), json={"roleKey": "k0", "displayName": "x"}).status_code == 409
    )


def test_search_lag_hides_the_last_writes(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    fake.search_lag(2)
    for key in ("a", "b", "c"):
        assert (
            api.post(roles_path(project), json={"roleKey": key, "displayName": key}).status_code
            == 200
        )
    assert role_keys(api, project) == ["a"]
    # Writes and unique constraints see everything at once.
    assert (
        api.post(roles_path(project), json={"roleKey": "c", "displayName": "c"}).status_code == 409
    )
    assert [r["key"] for r in fake.roles(project)] == ["a", "b", "c"]
    fake.search_lag(0)
    assert role_keys(api, project) == ["a", "b", "c"]

    # A grant created moments ago is not cascaded by a role removal (cascades read the query side).
    alice = fake.add_user("alice@acme.example")
    fake.search_lag(1)
    grant = api.post(
        f"/management/v1/users/{alice}/grants", json={"projectId": project, "roleKeys": ["a"]}
    )
    assert grant.status_code == 200
    assert api.delete(f"{roles_path(project)}/a").status_code == 200
    assert fake.grants(project)[0]["roleKeys"] == ["a"]
    fake.search_lag(0)


def test_search_lag_by_time(fake: FakeZitadel, api: httpx.Client) -> None:
    project = fake.add_project()
    fake.search_lag(seconds=30)
    api.post(roles_path(project), json={"roleKey": "a", "displayName": "A"})
    assert role_keys(api, project) == []
    fake.advance(31)
    assert role_keys(api, project) == ["a"]
    fake.search_lag(seconds=30)
    api.post(roles_path(project), json={"roleKey": "b", "displayName": "B"})
    assert role_keys(api, project) == ["a"]
    fake.catch_up()
    assert role_keys(api, project) == ["a", "b"]


def test_delay_and_concurrent_write_conflicts(fake: FakeZitadel) -> None:
    project = fake.add_project()
    fake.delay = 0.3
    fake.conflict_on_concurrent_writes = True
    results: list[int] = []

    def add(key: str) -> None:
        with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {PAT}"}) as client:
            response = client.post(roles_path(project), json={"roleKey": key, "displayName": key})
            results.append(response.status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=add, args=(key,)) for key in ("a", "b")]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 0.3
    assert sorted(results) == [200, 500]
    assert len(fake.roles(project)) == 1
    fake.reset_faults()
    assert fake.delay == 0.0


def test_stop_and_start_keep_state_and_port(fake: FakeZitadel) -> None:
    project = fake.add_project()
    fake.add_role(project, "admin")
    url = fake.url
    fake.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/oauth/v2/keys")
    fake.start()
    assert fake.url == url
    assert [r["key"] for r in fake.roles(project)] == ["admin"]
    assert httpx.get(f"{url}/oauth/v2/keys").status_code == 200
