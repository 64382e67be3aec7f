"""Tenant context: master key, virtual keys and Zitadel JWTs → `/v1/me/context`, on SQLite and
PostgreSQL, with acme and globex applied and a fake Zitadel on loopback for the JWKS."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cockpit.keys import create_key, revoke_key
from cockpit.server.app import create_app
from cockpit.server.backends import ZitadelAuthSettings
from cockpit.server.tenant import TenantResolver, request_token
from cockpit.store.engine import create_engine_for
from cockpit.store.tables import accounts, virtual_keys
from fakes.zitadel import FakeZitadel
from harness.cockpit import Cockpit
from harness.tenants import write_tenants

MASTER = "mk-tenant-tests-0123456789"


@pytest.fixture
def applied(cockpit: Cockpit) -> Iterator[sa.Engine]:
    write_tenants(cockpit.tenant)
    result = cockpit.apply()
    assert result.exit_code == 0, result.output
    engine = create_engine_for(cockpit.url)
    yield engine
    engine.dispose()


@pytest.fixture
def fake() -> Iterator[FakeZitadel]:
    with FakeZitadel() as server:
        yield server


def make_client(engine: sa.Engine, fake: FakeZitadel | None = None, cache_seconds: float = 5.0, **zitadel) -> TestClient:
    settings = ZitadelAuthSettings(issuer=fake.url, enabled=True, min_refetch_seconds=0, **zitadel) if fake else None
    resolver = TenantResolver(engine, MASTER, settings, cache_seconds=cache_seconds)
    return TestClient(create_app(engine, {}, resolver=resolver))


def me(client: TestClient, token: str | None = None, account: str | None = None, **headers: str) -> dict:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if account:
        headers["X-Account-Id"] = account
    response = client.get("/v1/me/context", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def account_id(engine: sa.Engine, name: str) -> str:
    with engine.connect() as connection:
        return str(connection.execute(sa.select(accounts.c.id).where(accounts.c.name == name)).scalar_one())


EMPTY = {"account_id": None, "is_super_admin": False, "auth_provider": None, "roles": [], "scopes": [], "product_domains_allowed": []}


def test_token_sources_in_the_old_systems_order() -> None:
    assert request_token({b"authorization": b"Bearer abc"}) == "abc"
    assert request_token({b"authorization": b"abc"}) == "abc"
    assert request_token({b"x-litellm-api-key": b"k"}) == "k"
    assert request_token({b"cookie": b"a=1; token=c", b"authorization": b"Bearer abc"}) == "c"
    assert request_token({b"authorization": b"Bearer "}) is None
    assert request_token({}) is None


def test_master_key_names_the_account_by_name_or_id(applied: sa.Engine) -> None:
    client = make_client(applied)
    acme = account_id(applied, "acme")
    assert me(client, MASTER) == {**EMPTY, "is_super_admin": True, "auth_provider": "litellm_master_key"}
    assert me(client, MASTER, "acme")["account_id"] == acme
    assert me(client, MASTER, acme)["account_id"] == acme
    assert me(client, MASTER, "no-such-account")["account_id"] is None
    assert me(client, None, "acme", **{"x-litellm-api-key": MASTER})["account_id"] == acme
    assert me(client, "not-the-master-key", "acme") == EMPTY
    assert me(client, None, "acme") == EMPTY


def test_litellm_master_key_is_read_from_the_environment(applied: sa.Engine) -> None:
    client = TestClient(create_app(applied, {"LITELLM_MASTER_KEY": "litellm-mk"}))
    assert me(client, "litellm-mk", "globex")["account_id"] == account_id(applied, "globex")


def test_virtual_keys_give_their_account_user_role_and_domains(applied: sa.Engine) -> None:
    client = make_client(applied)
    acme = account_id(applied, "acme")
    admin = create_key(applied, "acme", "admin@acme.com").key
    assert me(client, admin) == {
        "account_id": acme,
        "is_super_admin": False,
        "auth_provider": "virtual_key",
        "roles": ["account_admin"],
        "scopes": [],
        "product_domains_allowed": ["console", "copilot"],
    }
    console = create_key(applied, "acme", "rahul.mehta@acme.com", domain="console").key
    assert me(client, console)["roles"] == ["console_org_admin"]
    assert me(client, console)["product_domains_allowed"] == ["console"]
    user = create_key(applied, "acme", "bob.schmidt@acme.com", domain="copilot").key
    assert me(client, user)["roles"] == ["end_user"]
    org_admin = create_key(applied, "acme", "alice.nguyen@acme.com", domain="copilot", role="copilot_org_admin").key
    assert me(client, org_admin)["roles"] == ["copilot_org_admin"]
    # X-Account-Id is ignored for anyone but a super admin.
    assert me(client, admin, "globex")["account_id"] == acme
    assert me(client, admin, account_id(applied, "globex"))["account_id"] == acme
    assert me(client, admin + "x") == EMPTY


def test_revoked_keys_stop_working(applied: sa.Engine) -> None:
    client = make_client(applied, cache_seconds=0)
    issued = create_key(applied, "globex", "hank.scorpio@globex.test")
    assert me(client, issued.key)["auth_provider"] == "virtual_key"
    revoke_key(applied, "globex", issued.record.prefix)
    assert me(client, issued.key) == EMPTY


def test_a_key_loses_what_the_config_takes_away(applied: sa.Engine, cockpit: Cockpit) -> None:
    client = make_client(applied, cache_seconds=0)
    admin = create_key(applied, "globex", "frank.grimes@globex.test").key
    lair = create_key(applied, "globex", "mindy.simmons@globex.test", role="copilot_org_admin").key
    assert me(client, admin)["roles"] == ["console_org_admin"]
    assert me(client, lair)["roles"] == ["copilot_org_admin"]
    text = (cockpit.tenant / "globex.yaml").read_text()
    text = text.replace("  - {email: frank.grimes@globex.test, role: console_org_admin}\n", "")
    text = text.replace("    admins: [mindy.simmons@globex.test]\n", "")
    text = text.replace("  - {email: frank.grimes@globex.test, display_name: Frank Grimes}\n", "")
    (cockpit.tenant / "globex.yaml").write_text(text)
    result = cockpit.apply("--allow-delete")
    assert result.exit_code == 0, result.output
    assert me(client, admin) == EMPTY  # no longer an admin, and in no directory
    assert me(client, lair)["roles"] == ["end_user"]  # still a user, no longer an org admin


def test_last_used_is_written_once_not_per_request(applied: sa.Engine) -> None:
    client = make_client(applied, cache_seconds=0)
    issued = create_key(applied, "acme", "admin@acme.com")
    with client:
        for _ in range(5):
            me(client, issued.key)
    # The lifespan's end waits for the background writer.
    with applied.connect() as connection:
        used = connection.execute(sa.select(virtual_keys.c.last_used_at).where(virtual_keys.c.id == issued.record.id)).scalar()
    assert used is not None
    resolver = client.app.state.resolver
    assert list(resolver.keys._touched) == [issued.record.id]


def test_keys_of_a_suspended_account_do_not_authenticate(applied: sa.Engine) -> None:
    client = make_client(applied, cache_seconds=0)
    issued = create_key(applied, "globex", "hank.scorpio@globex.test")
    with applied.begin() as connection:
        connection.execute(sa.text("UPDATE accounts SET status = 'suspended' WHERE name = 'globex'"))
    refused = client.get("/v1/me/context", headers={"Authorization": f"Bearer {issued.key}"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Account 'globex' is suspended: its keys serve nothing until the config makes it active again."
    assert me(client, MASTER, "globex")["account_id"] == account_id(applied, "globex")


def acme_admin_claims(fake: FakeZitadel, **extra) -> dict:
    return {
        "sub": "301234567890130001",
        "email": "admin@acme.com",
        "alchemi:account_id": "acme",
        "urn:zitadel:iam:org:project:roles": {"acme_account_admin": {"301234567890120001": "acme.localhost"}, "globex_account_admin": {}},
        "scope": "openid copilot:admin",
        **extra,
    }


def test_zitadel_tokens_map_claims_and_the_accounts_role_prefix(applied: sa.Engine, fake: FakeZitadel) -> None:
    client = make_client(applied, fake)
    acme = account_id(applied, "acme")
    token = fake.sign_token(acme_admin_claims(fake))
    assert me(client, token) == {
        "account_id": acme,
        "is_super_admin": False,
        "auth_provider": "zitadel",
        "roles": ["account_admin"],
        "scopes": ["openid", "copilot:admin"],
        "product_domains_allowed": [],
    }
    # The account claim may hold the id too; X-Account-Id is ignored for a tenant's token.
    by_id = fake.sign_token(acme_admin_claims(fake, **{"alchemi:account_id": acme}))
    assert me(client, by_id, "globex")["account_id"] == acme
    status = client.get("/v1/auth/zitadel/status", headers={"Authorization": f"Bearer {token}"}).json()
    assert status["enabled"] is True and status["zitadel_configured"] is True and status["issuer"] == fake.url
    assert status["account_id"] == acme and status["roles"] == ["account_admin"]


def test_zitadel_super_admin_may_name_the_account(applied: sa.Engine, fake: FakeZitadel) -> None:
    client = make_client(applied, fake, super_admin_roles=("platform_owner",))
    token = fake.sign_token({"sub": "ops", "roles": ["platform_owner"]})
    context = me(client, token, "globex")
    assert context["is_super_admin"] is True
    assert context["account_id"] == account_id(applied, "globex")
    assert me(client, token)["account_id"] is None
    assert me(client, fake.sign_token({"sub": "x", "roles": ["super_admin"]}))["is_super_admin"] is False


def test_bad_zitadel_tokens_give_the_empty_context(applied: sa.Engine, fake: FakeZitadel) -> None:
    client = make_client(applied, fake, audience="cockpit-api")
    good = fake.sign_token(acme_admin_claims(fake, aud=["cockpit-api"]))
    assert me(client, good)["auth_provider"] == "zitadel"
    now = int(time.time())
    expired = fake.sign_token(acme_admin_claims(fake, aud=["cockpit-api"], exp=now - 3600, iat=now - 7200))
    wrong_audience = fake.sign_token(acme_admin_claims(fake, aud=["someone-else"]))
    wrong_issuer = fake.sign_token(acme_admin_claims(fake, aud=["cockpit-api"], iss="https://evil.test"))
    head, _body, signature = good.split(".")
    tampered = f"{head}.{fake.sign_token({'sub': 'x', 'roles': ['super_admin'], 'aud': ['cockpit-api']}).split('.')[1]}.{signature}"
    for token in (expired, wrong_audience, wrong_issuer, tampered, good[:-4] + "AAAA"):
        assert me(client, token) == EMPTY
        assert me(client, token, "acme") == EMPTY


def test_zitadel_status_without_zitadel(applied: sa.Engine) -> None:
    client = make_client(applied)
    assert client.get("/v1/auth/zitadel/status").json() == {**EMPTY, "enabled": False, "zitadel_configured": False, "issuer": None}


def test_cockpit_serve_answers_with_the_environments_master_key(applied: sa.Engine, cockpit: Cockpit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCKPIT_MASTER_KEY", MASTER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-c", "from cockpit.cli import main; main()", "serve", "--port", str(port), "--no-access-log"]
    server = subprocess.Popen(command, cwd=cockpit.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "healthy"}
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "cockpit serve did not start"
                time.sleep(0.1)
        body = httpx.get(f"http://127.0.0.1:{port}/v1/me/context", headers={"Authorization": f"Bearer {MASTER}", "X-Account-Id": "acme"}).json()
        assert body["account_id"] == account_id(applied, "acme") and body["is_super_admin"] is True
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
    assert "Traceback" not in server.stderr.read()
