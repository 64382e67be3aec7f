"""Attacks on identity: a tenant's Zitadel settings that make its people platform super admins
or another tenant's admins, and tokens whose scopes claim admin rights.

Written as an attacker would try them, against the real CLI, the real databases (SQLite and
PostgreSQL), the fake Zitadel on loopback and the real app. Each one succeeded before the fix:
validate passed `role_mappings: {end_user: super_admin}`, apply created and granted the role,
and the token carrying it read every account through `X-Account-Id`; a `scope` of `*` made an
end user a domain admin.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cockpit.zitadel.desired import (
    ActualZitadel,
    ReservedRoleKey,
    ZitadelChange,
    compare_zitadel,
    desired_zitadel,
)
from cockpit.resources.state import Resource, State
from cockpit.server.app import create_app
from cockpit.server.backends import ZitadelAuthSettings
from cockpit.server.tenant import TenantResolver
from cockpit.store.engine import create_engine_for
from cockpit.store.tables import accounts
from cockpit.plan.zitadel_section import PlanFailed, plan_zitadel
from fakes.zitadel import FakeZitadel
from harness.cockpit import Cockpit

PROJECT = "301234567890123456"
ORG = "301234567890120001"
PAT = "pat-for-identity-attacks-0123456789"
MASTER = "mk-identity-attacks-0123456789"
LOCATED = re.compile(r"\.yaml:\d+:\d+: error: ")


def account(name: str, zitadel: str, *, admin: str = "account_admin") -> str:
    """An account of its own e-mail domain with one admin and a copilot directory of two."""
    return f"""\
apiVersion: cockpit/v1
kind: Account
name: {name}
email_domain: {name}.test
admins:
  - {{email: boss@{name}.test, role: {admin}}}
zitadel:
  project_id: "{PROJECT}"
{zitadel}
---
apiVersion: cockpit/v1
kind: Directory
account: {name}
domain: copilot
users:
  - {{email: mallory@{name}.test, display_name: Mallory}}
  - {{email: trent@{name}.test, display_name: Trent}}
"""


ACME = account("acme", "  role_prefix: acme_")


@pytest.fixture
def fake() -> Iterator[FakeZitadel]:
    with FakeZitadel(org_id=ORG) as server:
        server.add_project(PROJECT, ORG)
        server.add_pat(PAT)
        yield server


@pytest.fixture
def cockpit(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeZitadel) -> Cockpit:
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    monkeypatch.setenv("ZITADEL_ISSUER_URL", fake.url)
    monkeypatch.setenv("ZITADEL_MGMT_API_TOKEN", PAT)
    monkeypatch.delenv("ZITADEL_SUPER_ADMIN_ROLES", raising=False)
    return runner


def people(fake: FakeZitadel, *names: str) -> dict[str, str]:
    """Zitadel users for every person of the accounts `names`: e-mail → user id."""
    return {
        email: fake.add_user(email, org_id=ORG)
        for name in names
        for email in (f"boss@{name}.test", f"mallory@{name}.test", f"trent@{name}.test")
    }


def client_for(url: str, fake: FakeZitadel, **settings) -> TestClient:
    engine = create_engine_for(url)
    zitadel = ZitadelAuthSettings(issuer=fake.url, enabled=True, min_refetch_seconds=0, **settings)
    return TestClient(create_app(engine, {}, resolver=TenantResolver(engine, MASTER, zitadel, cache_seconds=0)))


def context(client: TestClient, token: str, account_header: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}", **({"X-Account-Id": account_header} if account_header else {})}
    response = client.get("/v1/me/context", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def account_id(url: str, name: str) -> str:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(sa.select(accounts.c.id).where(accounts.c.name == name)).scalar_one())
    finally:
        engine.dispose()


# -- 1. a tenant maps its users to the platform's super-admin role -------------------------------


@pytest.mark.parametrize(
    "zitadel, field, environ",
    [
        pytest.param('  role_prefix: ""\n  role_mappings: {end_user: super_admin}', "end_user", {}, id="end_user-to-super_admin"),
        pytest.param("  role_mappings: {end_user: Super_Admin}", "end_user", {}, id="other-case"),
        pytest.param("  role_mappings: {account_admin: SUPER_ADMIN}", "account_admin", {}, id="admin-upper-case"),
        pytest.param("  role_prefix: evil_\n  role_mappings: {end_user: super_admin}", "end_user", {}, id="with-a-prefix"),
        pytest.param("  role_mappings: {copilot_org_admin: platform_owner}", "copilot_org_admin", {"ZITADEL_SUPER_ADMIN_ROLES": "platform_owner"}, id="configured-platform-role"),
        pytest.param("  role_mappings: {end_user: super_admin}", "end_user", {"ZITADEL_SUPER_ADMIN_ROLES": "platform_owner"}, id="default-kept-when-configured"),
        pytest.param('  role_prefix: ""', "role_prefix", {"ZITADEL_SUPER_ADMIN_ROLES": "account_admin"}, id="empty-prefix-base-role"),
        pytest.param("  role_prefix: plat_", "role_prefix", {"ZITADEL_SUPER_ADMIN_ROLES": "Plat_End_User"}, id="prefix-plus-base-role"),
    ],
)
def test_validate_refuses_role_keys_of_the_platform(cockpit: Cockpit, monkeypatch: pytest.MonkeyPatch, zitadel: str, field: str, environ: dict) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    cockpit.write(account("evil", zitadel))
    result = cockpit.run("validate", str(cockpit.tenant))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if "platform super-admin role" in line]
    assert errors, result.output
    assert LOCATED.search(errors[0]), errors[0]
    line = int(errors[0].split(".yaml:")[1].split(":")[0])
    assert field in (cockpit.tenant / "tenant.yaml").read_text().splitlines()[line - 1]


def test_super_admin_by_tenant_mapping_end_to_end(cockpit: Cockpit, fake: FakeZitadel) -> None:
    """The reported attack: validate, plan, apply, then the token of one of its users."""
    cockpit.write(ACME, "acme.yaml")
    evil = account("evil", '  role_prefix: ""\n  role_mappings: {end_user: super_admin}')
    cockpit.write(evil, "evil.yaml")
    users = people(fake, "acme", "evil")
    for command in (cockpit.plan, cockpit.apply):
        result = command()
        assert result.exit_code == 1, result.output
        assert "super_admin" in result.output and "platform super-admin role" in result.output
    assert "super_admin" not in {r["key"] for r in fake.roles(PROJECT)}
    assert all("super_admin" not in g["roleKeys"] for g in fake.grants(PROJECT))
    # The acme tenant alone applies; the attacker's user then signs in with what Zitadel holds.
    (cockpit.tenant / "evil.yaml").unlink()
    assert cockpit.apply().exit_code == 0
    client = client_for(cockpit.url, fake)
    token = fake.user_token(users["mallory@evil.test"], PROJECT, **{"alchemi:account_id": "evil"})
    seen = context(client, token, "acme")
    assert seen["is_super_admin"] is False
    assert seen["account_id"] != account_id(cockpit.url, "acme")


# -- 2. a tenant maps its users to another tenant's roles in a shared project ---------------------


@pytest.mark.parametrize(
    "zitadel, field, words",
    [
        pytest.param("  role_prefix: evil_\n  role_mappings: {end_user: acme_account_admin}", "end_user", "belongs to account 'acme'", id="mapping-to-acme-admin"),
        pytest.param("  role_mappings: {end_user: ACME_Account_Admin}", "end_user", "belongs to account 'acme'", id="other-case"),
        pytest.param("  role_prefix: acme_", "role_prefix", "belongs to account 'acme'", id="same-prefix"),
        pytest.param("  role_prefix: a", "role_prefix", "claims role key 'acme_account_admin'", id="prefix-of-acme-keys"),
        pytest.param("  role_prefix: evil_\n  role_mappings: {end_user: evil_account_admin}", "end_user", "already the key of account_admin", id="own-admin-role"),
    ],
)
def test_validate_refuses_role_keys_of_another_account(cockpit: Cockpit, zitadel: str, field: str, words: str) -> None:
    cockpit.write(ACME + "---\n" + account("evil", zitadel))
    result = cockpit.run("validate", str(cockpit.tenant))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if words in line]
    assert errors, result.output
    assert LOCATED.search(errors[0]), errors[0]
    line = int(errors[0].split(".yaml:")[1].split(":")[0])
    text = (cockpit.tenant / "tenant.yaml").read_text().splitlines()
    assert field in text[line - 1] and line > text.index("name: evil")


def test_two_unprefixed_accounts_in_one_project_collide(cockpit: Cockpit) -> None:
    cockpit.write(account("acme", "") + "---\n" + account("evil", ""))
    result = cockpit.run("validate", str(cockpit.tenant))
    assert result.exit_code == 1
    assert re.search(r"tenant\.yaml:\d+:\d+: error: role key 'account_admin' for account_admin belongs to account 'acme'", result.output), result.output


def test_plan_refuses_role_keys_of_another_workspaces_account(cockpit: Cockpit, tmp_path: Path) -> None:
    """acme is managed by another workspace (another team's repository), evil here."""
    cockpit.write(ACME)
    first = cockpit.apply("--workspace", "acme-team", "--skip-zitadel")
    assert first.exit_code == 0, first.output
    other = tmp_path / "evil-repo"
    other.mkdir()
    (other / "tenant.yaml").write_text(account("evil", '  role_prefix: ""\n  role_mappings: {end_user: acme_account_admin}'))
    assert cockpit.run("validate", str(other)).exit_code == 0  # alone, the config is fine
    result = cockpit.run("plan", str(other), "--workspace", "evil-team")
    assert result.exit_code == 1, result.output
    assert re.search(r"tenant\.yaml:\d+:\d+: error: role key 'acme_account_admin' for end_user belongs to account 'acme' \(the database, workspace 'acme-team'\)", result.output), result.output
    assert cockpit.run("apply", str(other), "--workspace", "evil-team", "--auto-approve", "--skip-zitadel").exit_code == 1
    assert cockpit.scalar("SELECT count(*) FROM accounts WHERE name = 'evil'") == 0


# -- 3. the plan never creates, grants or removes a platform role, whatever it is handed ----------


def bypassed_state(name: str, zitadel: dict) -> State:
    """Desired state as if validation had been skipped (settings straight from a database row)."""
    return State.of([
        Resource("account", name, (name,), {"zitadel": {"project_id": PROJECT, **zitadel}}),
        Resource("copilot_user", name, (f"mallory@{name}.test",), {}),
    ])


@pytest.mark.parametrize("mappings", [{"end_user": "super_admin"}, {"end_user": "Super_Admin"}, {"account_admin": "super_admin"}])
def test_plan_refuses_platform_keys_when_validation_was_bypassed(fake: FakeZitadel, mappings: dict) -> None:
    fake.add_user("mallory@evil.test", org_id=ORG)
    desired = bypassed_state("evil", {"role_prefix": "", "role_mappings": mappings})
    environ = {"ZITADEL_ISSUER_URL": fake.url, "ZITADEL_MGMT_API_TOKEN": PAT}
    with pytest.raises(PlanFailed) as refused:
        plan_zitadel(desired, State(), environ)
    assert "platform role" in str(refused.value) and "evil" in str(refused.value)
    wanted = desired_zitadel(desired, "evil")
    with pytest.raises(ReservedRoleKey):
        compare_zitadel(wanted, ActualZitadel({}, {"mallory@evil.test": "1"}, {}), set())
    with pytest.raises(ReservedRoleKey):  # a configured platform role too
        compare_zitadel(desired_zitadel(bypassed_state("x", {"role_mappings": {"end_user": "ops"}}), "x"), ActualZitadel({}, {}, {}), set(), frozenset({"ops"}))


@pytest.mark.parametrize(
    "change",
    [
        {"action": "add_role", "subject": "super_admin", "after": ["Super Admin", "common"]},
        {"action": "update_role", "subject": "SUPER_ADMIN", "before": ["a", "b"], "after": ["c", "d"]},
        {"action": "remove_role", "subject": "super_admin", "before": ["Super Admin", ""]},
        {"action": "add_grant", "subject": "mallory@evil.test", "after": ["evil_end_user", "super_admin"], "user_id": "1"},
        {"action": "update_grant", "subject": "mallory@evil.test", "before": ["evil_end_user"], "after": ["evil_end_user", "super_admin"], "user_id": "1", "grant_id": "2"},
        {"action": "update_grant", "subject": "ops@evil.test", "before": ["super_admin", "evil_end_user"], "after": ["evil_end_user"], "user_id": "1", "grant_id": "2"},
        {"action": "revoke_grant", "subject": "ops@evil.test", "before": ["super_admin"], "user_id": "1", "grant_id": "2"},
    ],
)
def test_a_saved_or_journalled_change_cannot_carry_a_platform_key(change: dict) -> None:
    """Saved plans and the apply journal come back through `ZitadelChange.from_dict`."""
    with pytest.raises(ReservedRoleKey, match="platform role"):
        ZitadelChange.from_dict({"account": "evil", "project_id": PROJECT, **change})


def test_a_configured_platform_role_is_refused_in_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    grant = {"action": "add_grant", "account": "evil", "project_id": PROJECT, "subject": "m@evil.test", "after": ["ops"], "user_id": "1"}
    assert ZitadelChange.from_dict(grant).after == ["ops"]
    monkeypatch.setenv("ZITADEL_SUPER_ADMIN_ROLES", "ops")
    with pytest.raises(ReservedRoleKey):
        ZitadelChange.from_dict(grant)
    kept = {"action": "update_grant", "account": "evil", "project_id": PROJECT, "subject": "m@evil.test", "before": ["super_admin", "a"], "after": ["super_admin", "b"], "user_id": "1", "grant_id": "2"}
    assert ZitadelChange.from_dict(kept).after == ["super_admin", "b"]  # kept as it was: not touched


def test_a_prefix_like_the_platform_role_never_removes_it(cockpit: Cockpit, fake: FakeZitadel) -> None:
    """`role_prefix: super_` is fine, but the platform's `super_admin` in the shared project, and
    on the grant of a platform admin who is also one of the tenant's people, are not the tenant's."""
    fake.add_role(PROJECT, "super_admin", "Platform Super Admin")
    users = people(fake, "superco")
    platform_grant = fake.add_grant(users["boss@superco.test"], PROJECT, ["super_admin"])
    cockpit.write(account("superco", "  role_prefix: super_"))
    plan = cockpit.plan("--json")
    assert plan.exit_code == 2, plan.output
    changes = json.loads(plan.stdout)["zitadel"]["changes"]
    assert not [c for c in changes if c["subject"] == "super_admin"]
    boss = next(c for c in changes if c["subject"] == "boss@superco.test")
    assert boss["action"] == "update_grant" and set(boss["after"]) == {"super_admin", "super_account_admin"}
    assert cockpit.apply("--allow-delete").exit_code == 0
    assert "super_admin" in {r["key"] for r in fake.roles(PROJECT)}
    grant = next(g for g in fake.grants(PROJECT) if g["id"] == platform_grant)
    assert set(grant["roleKeys"]) == {"super_admin", "super_account_admin"}
    # Removing the admin from the config takes only the tenant's role, never the grant.
    cockpit.write(account("superco", "  role_prefix: super_").replace("admins:\n  - {email: boss@superco.test, role: account_admin}\n", ""))
    assert cockpit.apply("--allow-delete").exit_code == 0
    grant = next(g for g in fake.grants(PROJECT) if g["id"] == platform_grant)
    assert grant["roleKeys"] == ["super_admin"]


# -- 4. runtime: a super-admin key a tenant produces is not honoured ------------------------------


def test_a_super_admin_key_produced_by_a_tenant_is_not_honoured(cockpit: Cockpit, fake: FakeZitadel) -> None:
    """Settings written to the database past validation (a hand-edited row, an old config):
    Zitadel would then hold a tenant-created `super_admin`, and the token cannot tell it apart."""
    cockpit.write(ACME, "acme.yaml")
    cockpit.write(account("evil", "  role_prefix: evil_"), "evil.yaml")
    users = people(fake, "acme", "evil")
    assert cockpit.apply().exit_code == 0
    acme = account_id(cockpit.url, "acme")
    client = client_for(cockpit.url, fake)
    platform = fake.sign_token({"sub": "ops", "roles": ["super_admin"]})
    assert context(client, platform, "acme")["account_id"] == acme  # the platform's own admin works
    engine = create_engine_for(cockpit.url)
    with engine.begin() as connection:
        connection.execute(accounts.update().where(accounts.c.name == "evil").values(
            zitadel={"project_id": PROJECT, "role_prefix": "", "role_mappings": {"end_user": "super_admin"}}
        ))
    # What Zitadel would put in the token once the tenant's apply had created and granted it.
    granted = {"urn:zitadel:iam:org:project:roles": {"super_admin": {ORG: "evil.test"}, "evil_end_user": {ORG: "evil.test"}}}
    for claims in ({"alchemi:account_id": "evil"}, {}, {"alchemi:account_id": "acme"}):
        token = fake.sign_token({"sub": users["mallory@evil.test"], **granted, **claims})
        seen = context(client, token, "acme")
        assert seen["is_super_admin"] is False, claims
        assert "super_admin" not in seen["roles"] or seen["account_id"] is None, claims  # no account: roles echoed, no rights
        assert seen["account_id"] != acme or claims.get("alchemi:account_id") == "acme", claims
        assert client.get("/v1/accounts", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    # Fail closed: while a tenant produces the key, it makes nobody super admin; fixed, it does.
    assert context(client, platform)["is_super_admin"] is False
    with engine.begin() as connection:
        connection.execute(accounts.update().where(accounts.c.name == "evil").values(zitadel={"project_id": PROJECT, "role_prefix": "evil_"}))
    engine.dispose()
    assert context(client, platform, "acme")["account_id"] == acme


def test_a_super_admin_role_string_is_not_super_admin_when_the_platform_uses_another(cockpit: Cockpit, fake: FakeZitadel) -> None:
    """With `ZITADEL_SUPER_ADMIN_ROLES=platform_owner`, `super_admin` is an ordinary string: the
    guards used to accept it in the roles all the same."""
    cockpit.write(account("plain", ""))  # no prefix, no mappings: the token's keys are base roles
    users = people(fake, "plain")
    applied = cockpit.apply("--skip-zitadel")
    assert applied.exit_code == 0, applied.output
    client = client_for(cockpit.url, fake, super_admin_roles=("platform_owner",))
    for claims in ({"sub": "x", "roles": ["super_admin"]}, {"sub": users["mallory@plain.test"], "roles": ["super_admin", "end_user"], "alchemi:account_id": "plain"}):
        token = fake.sign_token(claims)
        headers = {"Authorization": f"Bearer {token}"}
        seen = context(client, token)
        assert seen["is_super_admin"] is False
        assert "super_admin" not in seen["roles"] or seen["account_id"] is None  # no account: echoed, no rights
        assert client.get("/v1/accounts", headers=headers).status_code == 403
        assert client.get("/v1/budgets/copilot/account-allocation", headers=headers).status_code == 403
    owner = fake.sign_token({"sub": "ops", "roles": ["platform_owner"]})
    assert client.get("/v1/accounts", headers={"Authorization": f"Bearer {owner}"}).status_code == 200


# -- 5. scopes the client asked for are not admin rights ------------------------------------------


COPILOT_ADMIN = "/v1/budgets/copilot/account-allocation"
CONSOLE_ADMIN = "/v1/features/entitlements?domain=console"


@pytest.mark.parametrize(
    "route, scope",
    [
        (route, scope)
        for route, domain in ((COPILOT_ADMIN, "copilot"), (CONSOLE_ADMIN, "console"), ("/v1/features/entitlements?domain=copilot", "copilot"))
        for scope in ("*", f"{domain}:admin", "control_plane:admin", "openid profile * console:admin copilot:admin")
    ],
)
def test_an_end_user_asking_for_admin_scopes_is_refused(cockpit: Cockpit, fake: FakeZitadel, scope: str, route: str) -> None:
    cockpit.write(ACME)
    users = people(fake, "acme")
    assert cockpit.apply("--skip-zitadel").exit_code == 0
    client = client_for(cockpit.url, fake)
    user = users["mallory@acme.test"]
    for claims in (
        {"sub": user, "alchemi:account_id": "acme", "urn:zitadel:iam:org:project:roles": {"acme_end_user": {ORG: "acme.test"}}, "scope": scope},
        {"sub": user, "alchemi:account_id": "acme", "roles": ["acme_end_user"], "scopes": scope.split()},
    ):
        token = fake.sign_token(claims)
        assert context(client, token)["roles"] == ["end_user"]
        refused = client.get(route, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403, (claims, refused.text)
        assert "admin access required" in refused.json()["detail"]
    # The same route for a real admin of the domain (by role) still answers.
    admin = fake.sign_token({"sub": user, "alchemi:account_id": "acme", "urn:zitadel:iam:org:project:roles": {"acme_account_admin": {}}, "scope": scope})
    assert client.get(route, headers={"Authorization": f"Bearer {admin}"}).status_code == 200


def test_a_journal_row_edited_to_grant_a_platform_role_is_refused_not_a_crash(migrated_url: str) -> None:
    """Someone with write access to `apply_journal` turns a pending grant into a super-admin
    grant: the next apply refuses that step by name and goes on; it never runs, never crashes."""
    import uuid

    import sqlalchemy as sa

    from cockpit.apply.journal import run_journal
    from cockpit.store.engine import create_engine_for
    from cockpit.store.tables import metadata

    engine = create_engine_for(migrated_url)
    runs, journal = metadata.tables["apply_runs"], metadata.tables["apply_journal"]
    run_id = uuid.uuid4()
    payload = {"action": "add_grant", "account": "evil", "project_id": PROJECT, "subject": "m@evil.test", "after": ["super_admin"], "user_id": "1"}
    with engine.begin() as connection:
        connection.execute(runs.insert().values(id=run_id, workspace="default", status="succeeded"))
        connection.execute(journal.insert().values(id=uuid.uuid4(), run_id=run_id, seq=0, step_type="add_grant", payload=payload, status="pending"))
    called: list[object] = []
    outcome = run_journal(engine, None, client_for=lambda change: called.append(change))  # type: ignore[arg-type, return-value]
    assert outcome.failed == 1 and not called
    assert any("platform role" in error for error in outcome.errors)
    with engine.connect() as connection:
        assert connection.execute(sa.select(journal.c.status)).scalar_one() == "failed"
    engine.dispose()


def test_an_unverified_email_claim_names_nobody() -> None:
    """A user who changed their Zitadel e-mail to a colleague's, not yet confirmed, carries
    `email_verified: false`: the gateway must not serve them as that colleague."""
    from cockpit.server.claims import DEFAULT_ACCOUNT_ID_CLAIMS, DEFAULT_SUPER_ADMIN_ROLES, map_claims

    base = {"sub": "1", "email": "Alice@acme.com", "account_id": "acme"}
    assert map_claims({**base, "email_verified": False}, DEFAULT_ACCOUNT_ID_CLAIMS, DEFAULT_SUPER_ADMIN_ROLES).email is None
    assert map_claims({**base, "email_verified": True}, DEFAULT_ACCOUNT_ID_CLAIMS, DEFAULT_SUPER_ADMIN_ROLES).email == "alice@acme.com"
    assert map_claims(base, DEFAULT_ACCOUNT_ID_CLAIMS, DEFAULT_SUPER_ADMIN_ROLES).email == "alice@acme.com"  # access tokens may omit it
