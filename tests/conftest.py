"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL; `cockpit` is the CLI
harness of `harness.cockpit` on a migrated database (the other shared helpers are in `harness/`).

PostgreSQL tests create their own database on the server named by
``COCKPIT_TEST_DATABASE_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``) and drop
it afterwards. Without that variable they are skipped locally, but in CI (``CI`` set) a
missing server is a failure, and so is a run where PostgreSQL tests were skipped or none ran:
a green CI must mean both databases were exercised.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from cockpit.store.engine import normalise_database_url
from cockpit.store.migrate import upgrade
from fakes.openai import FakeOpenAI, serve_openai
from harness.cockpit import Cockpit

TEST_SERVER_VARIABLE = "COCKPIT_TEST_DATABASE_URL"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
def postgres_server_url() -> str:
    """The admin URL of the test PostgreSQL server (psycopg spelling, no SQLAlchemy driver)."""
    url = os.environ.get(TEST_SERVER_VARIABLE, "").strip()
    if not url:
        message = f"{TEST_SERVER_VARIABLE} is not set: no PostgreSQL server to test against"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def postgres_database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server; dropped (WITH FORCE) afterwards."""
    name = f"cockpit_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        server = make_url(normalise_database_url(postgres_server_url))
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, once as a SQLite file in tmp_path and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cockpit.db'}"
    return request.getfixturevalue("postgres_database_url")


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """`database_url` after `cockpit db upgrade`."""
    upgrade(database_url)
    return database_url


@pytest.fixture
def cockpit(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cockpit:
    """The CLI in `tmp_path/tenant` against a migrated database (a test file may override it)."""
    return Cockpit(migrated_url, tmp_path, monkeypatch)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    """The fake OpenAI provider on loopback, for the proxy's tests (stopped afterwards)."""
    fake = serve_openai()
    try:
        yield fake
    finally:
        fake.stop()


# -- CI guard: PostgreSQL must really have been tested ---------------------------------------

_postgres_outcomes: dict[str, int] = {"ran": 0, "skipped": 0}
_ci_failure: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "postgres" not in report.keywords:
        return
    if report.skipped:
        _postgres_outcomes["skipped"] += 1
    elif report.when == "call":
        _postgres_outcomes["ran"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not in_ci():
        return
    if _postgres_outcomes["skipped"]:
        _ci_failure.append(
            f"{_postgres_outcomes['skipped']} PostgreSQL test(s) were skipped; "
            f"CI must set {TEST_SERVER_VARIABLE}"
        )
    elif not _postgres_outcomes["ran"]:
        _ci_failure.append(
            f"no PostgreSQL test ran; CI must run them (set {TEST_SERVER_VARIABLE}, "
            f"do not deselect the 'postgres' marker)"
        )
    if _ci_failure and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for message in _ci_failure:
        terminalreporter.write_line(f"CI check failed: {message}", red=True, bold=True)
