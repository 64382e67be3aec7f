"""Which database Cockpit talks to, and what it says when it cannot reach it."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from cockpit.store.engine import (
    DatabaseNotConnected,
    connect_check,
    create_engine_for,
    effective_environment,
    mask_url,
    resolve_database_url,
)

# -- resolve_database_url ---------------------------------------------------------------------


def test_default_is_a_sqlite_file_in_the_working_directory(tmp_path: Path) -> None:
    assert resolve_database_url({}, tmp_path) == f"sqlite:///{tmp_path / 'cockpit.db'}"


def test_environment_variable_is_used(tmp_path: Path) -> None:
    url = resolve_database_url({"DATABASE_URL": "sqlite:////data/c.db"}, tmp_path)
    assert url == "sqlite:////data/c.db"


def test_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://u:p@db:5432/cockpit\n")
    assert resolve_database_url({}, tmp_path) == "postgresql+psycopg://u:p@db:5432/cockpit"


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://from-dotenv/db\n")
    url = resolve_database_url({"DATABASE_URL": "postgresql://from-env/db"}, tmp_path)
    assert url == "postgresql+psycopg://from-env/db"


def test_dotenv_without_the_variable_falls_back_to_sqlite(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OTHER=1\n")
    assert resolve_database_url({}, tmp_path) == f"sqlite:///{tmp_path / 'cockpit.db'}"


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    assert resolve_database_url({"DATABASE_URL": ""}, tmp_path).startswith("sqlite:///")


def test_effective_environment_layers_the_environment_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("COCKPIT_SECRET_KEY=from-dotenv\nONLY_DOTENV=1\n")
    merged = effective_environment({"COCKPIT_SECRET_KEY": "from-env"}, tmp_path)
    assert merged["COCKPIT_SECRET_KEY"] == "from-env"
    assert merged["ONLY_DOTENV"] == "1"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u:p@h/d?sslmode=require", "postgresql+psycopg://u:p@h/d?sslmode=require"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_postgres_urls_get_the_psycopg3_driver(tmp_path: Path, given: str, expected: str) -> None:
    assert resolve_database_url({"DATABASE_URL": given}, tmp_path) == expected


def test_relative_sqlite_path_is_made_absolute_against_the_working_directory(
    tmp_path: Path,
) -> None:
    url = resolve_database_url({"DATABASE_URL": "sqlite:///state/other.db"}, tmp_path)
    assert url == f"sqlite:///{tmp_path / 'state' / 'other.db'}"


def test_mask_url_hides_the_password() -> None:
    masked = mask_url("postgresql+psycopg://admin:hunter2@db:5432/cockpit?password=hunter2")
    assert "hunter2" not in masked
    assert "admin:***@db" in masked


# -- create_engine_for / connect_check ----------------------------------------------------------


def test_sqlite_engine_enforces_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'fk.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()


def test_sqlite_transactions_are_real(tmp_path: Path) -> None:
    """A rolled-back transaction leaves nothing behind, DDL and savepoints included."""
    engine = create_engine_for(f"sqlite:///{tmp_path / 'tx.db'}")
    try:
        with engine.connect() as connection:
            with connection.begin():
                connection.exec_driver_sql("CREATE TABLE kept (n INTEGER)")
            transaction = connection.begin()
            connection.exec_driver_sql("CREATE TABLE dropped (n INTEGER)")
            savepoint = connection.begin_nested()
            connection.exec_driver_sql("INSERT INTO kept VALUES (1)")
            savepoint.commit()
            transaction.rollback()
        names = sa.inspect(engine).get_table_names()
        assert names == ["kept"]
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM kept").scalar() == 0
    finally:
        engine.dispose()


def test_connect_check_passes_on_a_reachable_database(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        connect_check(engine)
    finally:
        engine.dispose()


def _assert_one_clean_line(error: DatabaseNotConnected, *forbidden: str) -> str:
    message = str(error)
    assert message.startswith("Database not connected: ")
    assert "\n" not in message
    assert "Traceback" not in message
    for word in forbidden:
        assert word not in message
    return message


def test_unreachable_postgres_port_is_reported_without_the_password() -> None:
    password = "pw-" + secrets.token_hex(8)
    engine = create_engine_for(f"postgresql://postgres:{password}@127.0.0.1:1/cockpit")
    try:
        with pytest.raises(DatabaseNotConnected) as caught:
            connect_check(engine)
    finally:
        engine.dispose()
    message = _assert_one_clean_line(caught.value, password)
    assert "127.0.0.1:1" in message
    assert "refused" in message


@pytest.mark.postgres
def test_missing_postgres_database_is_named(postgres_server_url: str) -> None:
    password = "pw-" + secrets.token_hex(8)
    missing = f"cockpit_missing_{secrets.token_hex(4)}"
    server = make_url(postgres_server_url)
    url = server.set(password=password, database=missing).render_as_string(hide_password=False)
    engine = create_engine_for(url)
    try:
        with pytest.raises(DatabaseNotConnected) as caught:
            connect_check(engine)
    finally:
        engine.dispose()
    message = _assert_one_clean_line(caught.value, password)
    assert f'database "{missing}" does not exist' in message


@pytest.mark.postgres
def test_unknown_postgres_role_is_reported(postgres_server_url: str) -> None:
    url = make_url(postgres_server_url).set(username="no_such_role_x", password="s3cret-pw")
    engine = create_engine_for(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(DatabaseNotConnected) as caught:
            connect_check(engine)
    finally:
        engine.dispose()
    message = _assert_one_clean_line(caught.value, "s3cret-pw")
    assert "no_such_role_x" in message


def test_unopenable_sqlite_file_is_reported(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'missing-dir' / 'cockpit.db'}")
    try:
        with pytest.raises(DatabaseNotConnected) as caught:
            connect_check(engine)
    finally:
        engine.dispose()
    message = _assert_one_clean_line(caught.value)
    assert "missing-dir" in message


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:topsecret@db/cockpit",
        "postgresql+psycopg2://root:topsecret@db/cockpit",
        "not a url at all",
    ],
)
def test_unusable_urls_are_reported_without_the_password(url: str) -> None:
    with pytest.raises(DatabaseNotConnected) as caught:
        create_engine_for(url)
    _assert_one_clean_line(caught.value, "topsecret")


@pytest.mark.postgres
def test_postgres_sessions_keep_alive(postgres_database_url: str) -> None:
    """A vanished client's session (and the apply locks it holds) ends within about a minute."""
    engine = create_engine_for(postgres_database_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW tcp_keepalives_idle").scalar() == "30"
            assert connection.exec_driver_sql("SHOW tcp_keepalives_count").scalar() == "3"
    finally:
        engine.dispose()
