"""The read API's security acceptance (tenant isolation, tokens, secrets), on SQLite and PostgreSQL.

- the six cases of the old hardening tests;
- an isolation matrix: every GET route of the OpenAPI document (so routes added later are
  covered too), called by acme's admins, by domain-restricted admins across domains, with
  tampered, forged, expired and wrongly-signed tokens, with someone else's X-Account-Id and with
  no token; no response may show anything of globex (a name, an email, an id);
- canary secrets in every secret file of examples/acme never appear in any response;
- 600 concurrent `/v1/me/context` requests against a real uvicorn all answer 200;
- write methods answer 405; the OpenAPI document holds together.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import HTTPException
from fastapi.testclient import TestClient

from cockpit.keys import create_key
from cockpit.proxy.endpoints import ENDPOINTS
from cockpit.server.app import WRITE_METHODS, create_app
from cockpit.runtime.context import RequestContext
from cockpit.server.guards import require_account_admin, require_domain_admin, require_super_admin
from cockpit.store.engine import create_engine_for
from fakes.zitadel import FakeZitadel
from harness.cockpit import Cockpit
from harness.tenants import GLOBEX_SECRETS, GLOBEX_WORDS, parameter_values, route_requests, tenant_rows, write_tenants

MASTER = "mk-security-tests-5f0c2a9e77"
CANARIES = {
    name: f"CANARY-{name}-d41d8cd98f00b204"
    for name in (
        "anthropic-api-key",
        "azure-openai-api-key",
        "composio-api-key",
        "github-mcp-token",
        "jira-api-token",
        "openai-api-key",
        "sso-client-secret",
    )
}
PUBLIC = {"/health", "/health/liveliness", "/health/readiness", "/v1/me/context", "/v1/auth/zitadel/status"}
EMPTY_ME = {"account_id": None, "is_super_admin": False, "auth_provider": None, "roles": [], "scopes": [], "product_domains_allowed": []}
MASTER_SCOPED = """\
apiVersion: cockpit/v1
kind: Account
name: acc-master-scoped
email_domain: master-scoped.test
"""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_segments(header: dict, claims: dict) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def hs256(claims: dict, secret: bytes) -> str:
    signed = jwt_segments({"alg": "HS256", "typ": "JWT"}, claims)
    return f"{signed}.{b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())}"


# -- the six cases of the old hardening tests ----------------------------------------------------


def test_console_only_admin_is_refused_by_the_copilot_guard() -> None:
    ctx = RequestContext(account_id=_id(), roles=("account_admin",), product_domains=("console",))
    with pytest.raises(HTTPException) as refused:
        require_domain_admin(ctx, "copilot")
    assert refused.value.status_code == 403 and "Domain access denied" in refused.value.detail


def test_copilot_admin_role_passes_the_copilot_guard_and_a_scope_alone_does_not() -> None:
    # Scopes are what a client asked for (any string), so they grant nothing; roles decide.
    account = _id()
    assert require_domain_admin(RequestContext(account_id=account, roles=("copilot_org_admin",)), "copilot") == account
    with pytest.raises(HTTPException) as refused:
        require_domain_admin(RequestContext(account_id=account, scopes=("copilot:admin",)), "copilot")
    assert (refused.value.status_code, refused.value.detail) == (403, "copilot admin access required")


def test_account_admin_guard_needs_an_account() -> None:
    with pytest.raises(HTTPException) as refused:
        require_account_admin(RequestContext(roles=("account_admin",)))
    assert (refused.value.status_code, refused.value.detail) == (403, "Account context required")


def test_super_admin_guard_refuses_an_account_admin() -> None:
    with pytest.raises(HTTPException) as refused:
        require_super_admin(RequestContext(account_id=_id(), roles=("account_admin",)))
    assert (refused.value.status_code, refused.value.detail) == (403, "Super admin access required")


def _id():
    import uuid

    return uuid.uuid4()


# -- a world: acme (with canaries) and globex applied, keys issued, a fake Zitadel -----------------


@dataclass
class World:
    engine: sa.Engine
    fake: FakeZitadel
    app: Any
    acme: Any
    globex: Any
    keys: dict[str, str]


@pytest.fixture
def world(migrated_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    cockpit = Cockpit(migrated_url, tmp_path, monkeypatch)
    write_tenants(cockpit.tenant, secrets=CANARIES)
    (cockpit.tenant / "master-scoped.yaml").write_text(MASTER_SCOPED)
    result = cockpit.apply()
    assert result.exit_code == 0, result.output
    engine = create_engine_for(migrated_url)
    keys = {
        "acme_admin": create_key(engine, "acme", "ines.garcia@acme.com").key,
        "console_only": create_key(engine, "acme", "rahul.mehta@acme.com", domain="console").key,
        "copilot_only": create_key(engine, "acme", "alice.nguyen@acme.com", domain="copilot", role="copilot_org_admin").key,
    }
    with FakeZitadel() as fake:
        app = create_app(engine, {"COCKPIT_MASTER_KEY": MASTER, "ZITADEL_ISSUER": fake.url})
        yield World(engine, fake, app, tenant_rows(engine, "acme"), tenant_rows(engine, "globex"), keys)
    engine.dispose()


def test_master_key_names_the_account_in_x_account_id(world: World) -> None:
    with TestClient(world.app) as client:
        body = client.get("/v1/me/context", headers={"Authorization": f"Bearer {MASTER}", "x-account-id": "acc-master-scoped"}).json()
    with world.engine.connect() as connection:
        scoped = connection.execute(sa.text("SELECT id FROM accounts WHERE name = 'acc-master-scoped'")).scalar_one()
    assert body["is_super_admin"] is True
    assert body["account_id"] == str(tenant_rows(world.engine, "acc-master-scoped").account_id)
    assert scoped is not None


@pytest.mark.parametrize("zitadel", [False, True], ids=["zitadel-disabled", "zitadel-enabled"])
def test_hs256_token_with_the_wrong_secret_sets_no_context(world: World, zitadel: bool) -> None:
    environ = {"COCKPIT_MASTER_KEY": MASTER, **({"ZITADEL_ISSUER": world.fake.url} if zitadel else {})}
    token = hs256({"account_id": str(world.acme.account_id), "roles": ["super_admin"], "is_super_admin": True}, b"wrong-secret")
    with TestClient(create_app(world.engine, environ)) as client:
        body = client.get("/v1/me/context", headers={"Authorization": f"Bearer {token}"}).json()
    assert body == EMPTY_ME


# -- the isolation matrix -------------------------------------------------------------------------


def callers(world: World) -> dict[str, dict[str, str]]:
    """Everyone who must not see globex, as request headers."""
    fake = world.fake
    globex_id = str(world.globex.account_id)
    now = int(time.time())
    acme_zitadel_admin = fake.sign_token(
        {"sub": "u-ines", "alchemi:account_id": "acme", "urn:zitadel:iam:org:project:roles": {"acme_account_admin": {}}}
    )
    console_zitadel_admin = fake.sign_token(
        {"sub": "u-rahul", "alchemi:account_id": "acme", "roles": ["account_admin"], "product_domains_allowed": ["console"]}
    )
    super_claims = {"sub": "u-evil", "roles": ["super_admin"], "alchemi:account_id": "globex"}
    good_super = fake.sign_token(super_claims)
    head, _body, signature = good_super.split(".")
    tampered = f"{head}.{b64(json.dumps({**super_claims, 'exp': now + 9999}).encode())}.{signature}"
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged_input = jwt_segments({"alg": "RS256", "kid": fake.kid, "typ": "JWT"}, {**super_claims, "iss": fake.url, "exp": now + 600})
    forged = f"{forged_input}.{b64(attacker.sign(forged_input.encode(), padding.PKCS1v15(), hashes.SHA256()))}"
    expired = fake.sign_token({**super_claims, "iat": now - 7200, "exp": now - 3600})
    hs = hs256({**super_claims, "account_id": globex_id, "is_super_admin": True}, MASTER.encode() + b"x")

    def bearer(token: str, account: str | None = "globex") -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **({"X-Account-Id": account} if account else {})}

    return {
        "acme admin key": bearer(world.keys["acme_admin"], None),
        "acme admin key + X-Account-Id globex": bearer(world.keys["acme_admin"]),
        "acme admin key + X-Account-Id globex id": bearer(world.keys["acme_admin"], globex_id),
        "acme Zitadel admin + X-Account-Id globex": bearer(acme_zitadel_admin),
        "console-only key": bearer(world.keys["console_only"], None),
        "copilot-only key": bearer(world.keys["copilot_only"], None),
        "console-only Zitadel admin": bearer(console_zitadel_admin, None),
        "tampered token": bearer(tampered),
        "forged token": bearer(forged),
        "expired token": bearer(expired),
        "HS256 token": bearer(hs),
        "no token": {"X-Account-Id": "globex"},
        "no token, cookie": {"Cookie": "token=ck-not-a-key", "X-Account-Id": globex_id},
    }


UNAUTHENTICATED = {"tampered token", "forged token", "expired token", "HS256 token", "no token", "no token, cookie"}
CONSOLE_ONLY = {"console-only key", "console-only Zitadel admin"}
COPILOT_AREAS = ("/v1/copilot/", "/v1/budgets/copilot/")


def needles(world: World) -> set[str]:
    """What only globex's data holds: ids, emails, names (not shared with acme), words."""
    acme_names = {n.lower() for names in world.acme.names_by_table.values() for n in names}
    names = {n.lower() for names in world.globex.names_by_table.values() for n in names} - acme_names - {"global"}
    found = world.globex.ids | {e.lower() for e in world.globex.emails} | names | {w.lower() for w in GLOBEX_WORDS}
    found |= {v.lower() for v in GLOBEX_SECRETS.values()}
    return {n for n in found if len(n) >= 5}


def leaks(body: str, sent: list[str], secrets: set[str]) -> list[str]:
    """The secrets in a body, after removing what the request itself sent (an echo is no leak)."""
    text = body.lower()
    for value in sorted(sent, key=len, reverse=True):
        text = text.replace(value.lower(), "")
    return sorted(s for s in secrets if s in text)


def probes(world: World, rows: Any, name: str) -> list[tuple[str, str, dict[str, str]]]:
    return list(route_requests(world.app.openapi(), parameter_values(rows, name), str(rows.account_id)))


def test_no_caller_sees_another_tenant_on_any_get_route(world: World) -> None:
    secrets = needles(world)
    requests = probes(world, world.globex, "globex")
    routes = {route for route, _, _ in requests}
    assert len(routes) >= 3 and {"/v1/me/context", "/v1/auth/zitadel/status"} <= routes
    problems: list[str] = []
    with TestClient(world.app) as client:
        # Control: a super admin naming globex does see its data, so the probes reach it.
        seen = 0
        for route, path, query in requests:
            response = client.get(path, params=query, headers={"Authorization": f"Bearer {MASTER}", "X-Account-Id": "globex"})
            seen += bool(leaks(response.text, [], secrets))
        assert seen >= min(10, len(routes) // 2), f"the probes reached globex's data on only {seen} requests"

        for caller, headers in callers(world).items():
            for route, path, query in requests:
                response = client.get(path, params=query, headers=headers)
                sent = [*query.values(), *path.split("/")]
                found = leaks(response.text, sent, secrets)
                where = f"{caller}: GET {path} {query or ''} → {response.status_code}"
                if found:
                    problems.append(f"{where} shows globex's {found[:3]}")
                if caller in UNAUTHENTICATED:
                    if route in PUBLIC:
                        if not route.startswith("/health") and {k: v for k, v in response.json().items() if k in EMPTY_ME} != EMPTY_ME:
                            problems.append(f"{where} sets a context: {response.text[:200]}")
                    elif response.status_code < 400:
                        problems.append(f"{where} answers without credentials")
                if caller in CONSOLE_ONLY and route.startswith(COPILOT_AREAS) and response.status_code != 403:
                    problems.append(f"{where}: a console-only admin reached a copilot route")
                if caller == "copilot-only key" and route.startswith("/v1/console/") and response.status_code != 403:
                    problems.append(f"{where}: a copilot-only admin reached a console route")
                if query.get("domain") == "copilot" and caller in CONSOLE_ONLY and response.status_code != 403:
                    problems.append(f"{where}: a console-only admin reached copilot data")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:40])


def test_canary_secrets_never_appear_in_any_response(world: World) -> None:
    canaries = {c.lower() for c in CANARIES.values()} | {v.lower() for v in GLOBEX_SECRETS.values()}
    fingerprints: set[str] = set()
    with world.engine.connect() as connection:
        for table, column in (
            ("connections", "secret_encrypted"),
            ("connections", "secret_fingerprint"),
            ("models", "api_key_encrypted"),
            ("models", "api_key_fingerprint"),
            ("account_sso", "secret_settings_encrypted"),
            ("account_sso", "secret_settings_fingerprint"),
        ):
            fingerprints |= {str(v) for v in connection.execute(sa.text(f"SELECT {column} FROM {table}")).scalars() if v}
    secrets = canaries | {f.lower() for f in fingerprints if len(f) >= 16}
    acme_key = world.keys["acme_admin"]
    answered = 0
    problems: list[str] = []
    with TestClient(world.app) as client:
        openapi = client.get("/openapi.json")
        assert not leaks(openapi.text, [], secrets)
        for rows, name in ((world.acme, "acme"), (world.globex, "globex")):
            for _route, path, query in probes(world, rows, name):
                for headers in ({"Authorization": f"Bearer {MASTER}", "X-Account-Id": name}, {"Authorization": f"Bearer {acme_key}"}):
                    response = client.get(path, params=query, headers=headers)
                    answered += response.status_code == 200
                    found = leaks(response.text, [], secrets)
                    if found:
                        problems.append(f"GET {path} {query or ''} as {headers.get('X-Account-Id', 'acme admin')} shows {found}")
        connections = client.get("/v1/copilot/connections", headers={"Authorization": f"Bearer {acme_key}"})
    assert not problems, "\n".join(problems[:40])
    assert answered >= 10
    if connections.status_code == 200:  # control: the route serves acme's connections
        assert "salesforce" in connections.text and "jira" in connections.text


# -- load, write methods, OpenAPI -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_600_concurrent_context_requests_against_uvicorn(world: World) -> None:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(world.app, host="127.0.0.1", port=port, log_level="warning", backlog=2048))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    acme = str(world.acme.account_id)
    headers = [
        {"Authorization": f"Bearer {MASTER}", "X-Account-Id": "acme"},
        {"Authorization": f"Bearer {world.keys['acme_admin']}", "X-Account-Id": "globex"},
        {"x-litellm-api-key": world.keys["copilot_only"]},
    ]

    async def load() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
            return await asyncio.gather(*(client.get("/v1/me/context", headers=headers[i % 3]) for i in range(600)))

    try:
        started = time.monotonic()
        responses = asyncio.run(load())
        elapsed = time.monotonic() - started
    finally:
        server.should_exit = True
        thread.join(10)
    assert [r.status_code for r in responses] == [200] * 600
    assert {r.json()["account_id"] for r in responses} == {acme}
    assert 600 / elapsed > 50  # the old system's bar; tests/bench/bench_serve.py measures for real


PROXY_CALLS = {("POST", endpoint.path) for endpoint in ENDPOINTS} | {("POST", "/v1/messages/count_tokens")}
"""The write methods served: the gateway's calls, which change no configuration."""


def test_write_methods_answer_405() -> None:
    app = create_app(sa.create_engine("sqlite://"), {"COCKPIT_MASTER_KEY": MASTER})
    with TestClient(app) as client:
        for path in [*app.openapi()["paths"], "/v1/accounts"]:
            concrete = path.replace("{", "").replace("}", "")
            for method in WRITE_METHODS:
                if (method, path) in PROXY_CALLS:
                    continue
                response = client.request(method, concrete, headers={"Authorization": f"Bearer {MASTER}"}, json={"name": "x"})
                assert response.status_code == 405, (method, path, response.text)


def test_paths_nobody_serves_answer_404_naming_them() -> None:
    app = create_app(sa.create_engine("sqlite://"), {"COCKPIT_MASTER_KEY": MASTER})
    with TestClient(app) as client:
        for method, path in (("POST", "/v1/files"), ("POST", "/v1/audio/speech"), ("GET", "/v1/batches"), ("POST", "/v1/anything/else"), ("DELETE", "/nothing")):
            response = client.request(method, path, headers={"Authorization": f"Bearer {MASTER}"}, json={"name": "x"})
            assert response.status_code == 404, (method, path, response.text)
            error = response.json()["error"]
            assert error["code"] == "unknown_url" and f"{method} {path}" in error["message"]
        wrong = client.get("/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER}"})
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST" and wrong.json()["error"]["code"] == "method_not_allowed"


def test_openapi_document_holds_together() -> None:
    app = create_app(sa.create_engine("sqlite://"), {})
    with TestClient(app) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "Cockpit"
    operation_ids = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert method == "get" or (method.upper(), path) in PROXY_CALLS, f"{method.upper()} {path}: the API is read-only"
            assert operation.get("responses"), path
            operation_ids.append(operation["operationId"])
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(__import__("re").findall(r"{(\w+)}", path)), path
    assert len(operation_ids) == len(set(operation_ids))
    for ref in __import__("re").findall(r'"\$ref": ?"#/components/schemas/([^"]+)"', json.dumps(spec)):
        assert ref in spec["components"]["schemas"], ref
