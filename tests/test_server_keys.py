"""`cockpit keys create|list|revoke` through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import sqlalchemy as sa

from cockpit.store.engine import create_engine_for
from cockpit.store.tables import virtual_keys
from harness.cockpit import Cockpit
from harness.tenants import write_tenants


@pytest.fixture
def cockpit(migrated_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Cockpit:
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    write_tenants(runner.tenant)
    result = runner.apply()
    assert result.exit_code == 0, result.output
    return runner


def stored(cockpit: Cockpit) -> list[dict]:
    engine = create_engine_for(cockpit.url)
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(sa.select(virtual_keys)).mappings()]
    finally:
        engine.dispose()


def test_create_prints_the_key_alone_and_stores_only_its_hash(cockpit: Cockpit) -> None:
    result = cockpit.run("keys", "create", "--account", "acme", "--user", "Admin@ACME.com")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert result.stdout == key + "\n"
    assert re.fullmatch(r"ck-[A-Za-z0-9_-]{43}", key)
    assert "shown only this once" in result.stderr and key not in result.stderr
    [row] = stored(cockpit)
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["key_prefix"] == key[:11] and row["user_email"] == "admin@acme.com"
    assert row["domain"] is None and row["role"] is None
    assert key not in json.dumps(row, default=str)


def test_keys_for_admins_in_no_directory_and_for_directory_users(cockpit: Cockpit) -> None:
    # ines.garcia is an account admin of acme and in no copilot team; hank is globex's admin.
    for args in (
        ("--account", "acme", "--user", "ines.garcia@acme.com", "--domain", "copilot"),
        ("--account", "globex", "--user", "hank.scorpio@globex.test", "--domain", "console"),
        ("--account", "acme", "--user", "bob.schmidt@acme.com", "--domain", "copilot"),
        ("--account", "acme", "--user", "alice.nguyen@acme.com", "--domain", "copilot", "--role", "copilot_org_admin"),
        ("--account", "acme", "--user", "alice.nguyen@acme.com", "--agent", "helpdesk"),
    ):
        result = cockpit.run("keys", "create", *args)
        assert result.exit_code == 0, (args, result.output)
    assert len(stored(cockpit)) == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (("--account", "nope", "--user", "admin@acme.com"), "no account named 'nope'"),
        (("--account", "acme", "--user", "hank.scorpio@globex.test"), "neither an admin of account 'acme' nor a user"),
        (("--account", "acme", "--user", "svc-ci@acme.com", "--domain", "copilot"), "nor a user in the copilot directory"),
        (("--account", "acme", "--user", "bob.schmidt@acme.com", "--role", "account_admin"), "does not hold the role account_admin"),
        (("--account", "acme", "--user", "bob.schmidt@acme.com", "--role", "super_admin"), "unknown role 'super_admin'"),
        (("--account", "acme", "--user", "bob.schmidt@acme.com", "--agent", "volcano-lair-bot"), "no agent named 'volcano-lair-bot'"),
    ],
)
def test_create_refuses_unknown_accounts_users_roles_and_agents(cockpit: Cockpit, args: tuple[str, ...], message: str) -> None:
    result = cockpit.run("keys", "create", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert stored(cockpit) == []


def test_list_and_revoke(cockpit: Cockpit) -> None:
    first = cockpit.run("keys", "create", "--account", "acme", "--user", "admin@acme.com").stdout.strip()
    second = cockpit.run("keys", "create", "--account", "acme", "--user", "rahul.mehta@acme.com", "--domain", "console").stdout.strip()
    cockpit.run("keys", "create", "--account", "globex", "--user", "hank.scorpio@globex.test")
    listed = cockpit.run("keys", "list", "--account", "acme")
    assert listed.exit_code == 0
    assert first not in listed.output and second not in listed.output
    assert first[:11] in listed.stdout and second[:11] in listed.stdout
    assert "hank.scorpio" not in listed.stdout
    rows = json.loads(cockpit.run("keys", "list", "--account", "acme", "--json").stdout)
    assert {r["user"] for r in rows} == {"admin@acme.com", "rahul.mehta@acme.com"}
    assert all(r["revoked"] == "-" for r in rows)

    # A key of acme cannot be revoked through globex.
    assert cockpit.run("keys", "revoke", first[:11], "--account", "globex").exit_code == 1
    revoked = cockpit.run("keys", "revoke", first[:11], "--account", "acme")
    assert revoked.exit_code == 0, revoked.output
    assert "Revoked key" in revoked.stderr
    again = cockpit.run("keys", "revoke", first, "--account", "acme")
    assert again.exit_code == 0 and "already revoked" in again.stderr
    by_id = next(r["id"] for r in rows if r["user"] == "rahul.mehta@acme.com")
    assert cockpit.run("keys", "revoke", by_id, "--account", "acme").exit_code == 0
    rows = json.loads(cockpit.run("keys", "list", "--account", "acme", "--json").stdout)
    assert all(r["revoked"] != "-" for r in rows)
    missing = cockpit.run("keys", "revoke", "ck-nothing", "--account", "acme")
    assert missing.exit_code == 1 and "has no key" in missing.stderr
