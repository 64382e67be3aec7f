"""The migrated schema is exactly the tables' MetaData, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from cockpit.store import tables as t
from cockpit.store.engine import DatabaseNotConnected, create_engine_for
from cockpit.store.migrate import (
    SchemaNotCurrent,
    alembic_config,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)
from cockpit.store.secrets import SecretBox
from harness.cockpit import REPOSITORY

HEAD = ScriptDirectory(str(REPOSITORY / "migrations")).get_current_head()
"""The newest revision of the repository's migrations, read by Alembic, not by the code tested."""


@pytest.fixture
def engine(migrated_url: str) -> Iterator[sa.Engine]:
    engine = create_engine_for(migrated_url)
    yield engine
    engine.dispose()


def _account(connection: sa.Connection, name: str = "acme") -> uuid.UUID:
    account_id = uuid.uuid4()
    connection.execute(sa.insert(t.accounts).values(id=account_id, name=name))
    return account_id


# -- the schema --------------------------------------------------------------------------------


def test_migrated_database_matches_the_metadata(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, t.metadata) == []


def test_check_constraints_match_the_metadata(engine: sa.Engine) -> None:
    """Alembic does not compare CHECK constraints, so compare their names here."""
    inspector = sa.inspect(engine)
    for table in t.metadata.sorted_tables:
        declared = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        reflected = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert reflected == declared, table.name


def test_every_table_has_a_uuid_primary_key(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) == set(t.metadata.tables) | {"alembic_version"}
    for table in t.metadata.sorted_tables:
        assert inspector.get_pk_constraint(table.name)["constrained_columns"] == ["id"]
        assert isinstance(table.c.id.type, sa.Uuid)


def test_upgrade_is_idempotent(migrated_url: str) -> None:
    assert current_revision(migrated_url) == head_revision() == HEAD
    assert upgrade(migrated_url) == HEAD
    assert current_revision(migrated_url) == HEAD


def test_fresh_database_has_no_revision_and_is_not_current(database_url: str) -> None:
    assert current_revision(database_url) is None
    engine = create_engine_for(database_url)
    try:
        with pytest.raises(SchemaNotCurrent, match="cockpit db upgrade"):
            require_current(engine)
        assert upgrade(database_url) == HEAD
        require_current(engine)
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(migrated_url: str) -> None:
    config = alembic_config()
    config.attributes["url"] = migrated_url
    command.downgrade(config, "base")
    assert current_revision(migrated_url) is None
    assert upgrade(migrated_url) == HEAD


def test_upgrade_of_an_unreachable_database_says_not_connected() -> None:
    with pytest.raises(DatabaseNotConnected, match="refused"):
        upgrade("postgresql://postgres:pw@127.0.0.1:1/cockpit")


@pytest.mark.postgres
def test_json_columns_are_jsonb_on_postgresql(postgres_database_url: str) -> None:
    upgrade(postgres_database_url)
    json_columns = [
        (table.name, column.name)
        for table in t.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, sa.JSON)
    ]
    assert ("accounts", "feature_pack") in json_columns
    engine = create_engine_for(postgres_database_url)
    try:
        inspector = sa.inspect(engine)
        for table_name, column_name in json_columns:
            reflected = {c["name"]: c["type"] for c in inspector.get_columns(table_name)}
            assert isinstance(reflected[column_name], JSONB), (table_name, column_name)
    finally:
        engine.dispose()


def test_timestamps_are_timezone_aware_and_defaulted(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        account_id = _account(connection)
        row = connection.execute(
            sa.select(t.accounts).where(t.accounts.c.id == account_id)
        ).one()
    assert row.created_at.tzinfo is not None
    assert row.created_at.utcoffset().total_seconds() == 0
    assert row.status == "active"
    assert row.workspace == "default"
    assert row.protect is False
    assert row.credit_factor == Decimal("1")
    assert row.feature_pack == {"features": [], "config": {}}
    assert row.model_policy["copilot"] == {"allow": [], "deny": []}


def test_money_keeps_its_decimals(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        account_id = _account(connection)
        plan_id = uuid.uuid4()
        connection.execute(
            sa.insert(t.budget_plans).values(id=plan_id, account_id=account_id, name="fy26")
        )
        connection.execute(
            sa.insert(t.budget_allocations).values(
                plan_id=plan_id, scope_type="pool", credits=Decimal("1333.33")
            )
        )
        connection.execute(
            sa.insert(t.usage_ledger).values(
                account_id=account_id,
                domain="copilot",
                raw_cost=Decimal("0.00012345"),
                credits=Decimal("0.00015431"),
            )
        )
        credits = connection.execute(sa.select(t.budget_allocations.c.credits)).scalar_one()
        ledger = connection.execute(sa.select(t.usage_ledger.c.raw_cost)).scalar_one()
    assert credits == Decimal("1333.33")
    assert ledger == Decimal("0.00012345")


# -- integrity ----------------------------------------------------------------------------------


def _directory(connection: sa.Connection, account_id: uuid.UUID) -> dict[str, uuid.UUID]:
    ids = {"org": uuid.uuid4(), "team": uuid.uuid4(), "user": uuid.uuid4()}
    connection.execute(
        sa.insert(t.copilot_orgs).values(id=ids["org"], account_id=account_id, name="research")
    )
    connection.execute(
        sa.insert(t.copilot_teams).values(
            id=ids["team"], account_id=account_id, org_id=ids["org"], name="ml"
        )
    )
    connection.execute(
        sa.insert(t.copilot_users).values(
            id=ids["user"], account_id=account_id, email="alice@acme.com"
        )
    )
    connection.execute(
        sa.insert(t.copilot_team_members).values(
            team_id=ids["team"], user_id=ids["user"], role="admin"
        )
    )
    return ids


def _count(connection: sa.Connection, table: sa.Table) -> int:
    return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_deleting_a_team_removes_its_members(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        ids = _directory(connection, _account(connection))
        connection.execute(sa.delete(t.copilot_teams).where(t.copilot_teams.c.id == ids["team"]))
        assert _count(connection, t.copilot_team_members) == 0
        assert _count(connection, t.copilot_users) == 1


def test_deleting_an_account_removes_its_config_but_keeps_runtime_data(
    engine: sa.Engine,
) -> None:
    with engine.begin() as connection:
        account_id = _account(connection)
        _directory(connection, account_id)
        agent_id = uuid.uuid4()
        connection.execute(
            sa.insert(t.agents).values(id=agent_id, account_id=account_id, name="helpdesk")
        )
        connection.execute(
            sa.insert(t.agent_grants).values(
                agent_id=agent_id, scope_type="team", scope_key="research/ml"
            )
        )
        connection.execute(
            sa.insert(t.usage_ledger).values(account_id=account_id, domain="copilot")
        )
        connection.execute(
            sa.insert(t.audit_events).values(
                account_id=account_id,
                domain="copilot",
                actor="ci",
                action="create",
                kind="Agent",
                resource_key="acme/helpdesk",
                after={"name": "helpdesk"},
            )
        )
        connection.execute(sa.delete(t.accounts).where(t.accounts.c.id == account_id))
        for table in (t.copilot_orgs, t.copilot_teams, t.copilot_users, t.agents, t.agent_grants):
            assert _count(connection, table) == 0, table.name
        assert _count(connection, t.usage_ledger) == 1
        assert _count(connection, t.audit_events) == 1


@pytest.mark.parametrize("domain", t.DOMAINS)
def test_org_admins_are_unique_and_go_with_their_org_or_user(
    engine: sa.Engine, domain: str
) -> None:
    tables = t.DIRECTORIES[domain]
    with engine.begin() as connection:
        account_id = _account(connection)
        org_ids = [uuid.uuid4(), uuid.uuid4()]
        for org_id, name in zip(org_ids, ("research", "sales")):
            connection.execute(
                sa.insert(tables.orgs).values(id=org_id, account_id=account_id, name=name)
            )
        user_ids = [uuid.uuid4(), uuid.uuid4()]
        for user_id, email in zip(user_ids, ("alice@acme.com", "bob@acme.com")):
            connection.execute(
                sa.insert(tables.users).values(id=user_id, account_id=account_id, email=email)
            )
        for org_id in org_ids:
            for user_id in user_ids:
                connection.execute(
                    sa.insert(tables.org_admins).values(org_id=org_id, user_id=user_id)
                )
        with pytest.raises(IntegrityError), connection.begin_nested():
            connection.execute(
                sa.insert(tables.org_admins).values(org_id=org_ids[0], user_id=user_ids[0])
            )
        connection.execute(sa.delete(tables.orgs).where(tables.orgs.c.id == org_ids[0]))
        assert _count(connection, tables.org_admins) == 2
        connection.execute(sa.delete(tables.users).where(tables.users.c.id == user_ids[0]))
        assert _count(connection, tables.org_admins) == 1


def test_connection_secret_refs_default_to_an_empty_object(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        account_id = _account(connection)
        connection.execute(
            sa.insert(t.connections).values(account_id=account_id, name="crm", type="openapi")
        )
        assert connection.execute(sa.select(t.connections.c.secret_refs)).scalar_one() == {}


def test_member_of_an_unknown_team_is_rejected(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        ids = _directory(connection, _account(connection))
        with pytest.raises(IntegrityError):
            connection.execute(
                sa.insert(t.copilot_team_members).values(
                    team_id=uuid.uuid4(), user_id=ids["user"]
                )
            )


def _insert_twice(engine: sa.Engine, table: sa.Table, **values: object) -> None:
    with engine.connect() as connection:
        account_id = _account(connection)
        values = {"account_id": account_id, **values}
        connection.execute(sa.insert(table).values(**values))
        with pytest.raises(IntegrityError):
            connection.execute(sa.insert(table).values(**values))


def test_duplicate_account_name_is_rejected(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        _account(connection, "acme")
        with pytest.raises(IntegrityError):
            _account(connection, "acme")


def test_duplicate_email_domain_is_rejected_but_many_accounts_may_have_none(
    engine: sa.Engine,
) -> None:
    with engine.connect() as connection:
        _account(connection, "one")
        _account(connection, "two")  # both without an email domain
        connection.execute(sa.insert(t.accounts).values(name="three", email_domain="acme.com"))
        with pytest.raises(IntegrityError):
            connection.execute(sa.insert(t.accounts).values(name="four", email_domain="acme.com"))


def test_duplicate_user_email_is_rejected(engine: sa.Engine) -> None:
    _insert_twice(engine, t.console_users, email="bob@acme.com")


def test_duplicate_account_scope_grant_is_rejected(engine: sa.Engine) -> None:
    """The keyless account scope stores '' so the unique constraint sees duplicates."""
    _insert_twice(
        engine, t.model_grants, domain="copilot", model_name="gpt-4o", scope_type="account"
    )


def test_duplicate_scoped_grant_is_rejected(engine: sa.Engine) -> None:
    _insert_twice(
        engine,
        t.feature_entitlements,
        domain="console",
        feature="image_generation",
        scope_type="org",
        scope_key="research",
    )


@pytest.mark.parametrize(
    ("scope_type", "scope_key"),
    [("account", "acme"), ("org", ""), ("galaxy", "far-away")],
)
def test_inconsistent_scopes_are_rejected(
    engine: sa.Engine, scope_type: str, scope_key: str
) -> None:
    with engine.connect() as connection:
        account_id = _account(connection)
        with pytest.raises(IntegrityError):
            connection.execute(
                sa.insert(t.model_grants).values(
                    account_id=account_id,
                    domain="copilot",
                    model_name="gpt-4o",
                    scope_type=scope_type,
                    scope_key=scope_key,
                )
            )


def test_unknown_enum_value_is_rejected(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        account_id = _account(connection)
        with pytest.raises(IntegrityError):
            connection.execute(
                sa.insert(t.connections).values(account_id=account_id, name="x", type="ftp")
            )


def test_usage_ledger_request_id_is_unique_but_optional(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        account_id = uuid.uuid4()  # runtime rows need no account row
        row = {"account_id": account_id, "domain": "copilot"}
        connection.execute(sa.insert(t.usage_ledger).values(**row))
        connection.execute(sa.insert(t.usage_ledger).values(**row))
        connection.execute(sa.insert(t.usage_ledger).values(**row, request_id="req-1"))
        with pytest.raises(IntegrityError):
            connection.execute(sa.insert(t.usage_ledger).values(**row, request_id="req-1"))


def test_updated_at_moves_on_update(engine: sa.Engine) -> None:
    long_ago = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    with engine.begin() as connection:
        account_id = _account(connection)
        this_account = t.accounts.c.id == account_id
        connection.execute(sa.update(t.accounts).where(this_account).values(updated_at=long_ago))
        connection.execute(sa.update(t.accounts).where(this_account).values(alias="Acme Corp"))
        updated_at = connection.execute(
            sa.select(t.accounts.c.updated_at).where(this_account)
        ).scalar_one()
    assert updated_at > long_ago


def test_sqlite_key_file_lives_beside_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    SecretBox.from_environment(url, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db", "state.db.key"]
