"""Which database to talk to, and an engine that behaves the same on SQLite and PostgreSQL.

The embedded default is a SQLite file in the working directory; PostgreSQL comes through
``DATABASE_URL`` in its usual spellings. No engine lives at module level: commands resolve a
URL, build an engine and pass it down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dotenv import dotenv_values
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

DEFAULT_SQLITE_FILE = "cockpit.db"
SQLITE_BUSY_TIMEOUT_SECONDS = 30
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10

_POSTGRES_PREFIXES = ("postgres://", "postgresql://")


class DatabaseNotConnected(Exception):
    """The database cannot be reached or used; the message says why, on one line.

    The message never carries a password: URLs in it are masked with `mask_url`.
    """

    def __init__(self, reason: str) -> None:
        self.reason = " ".join(reason.split())
        super().__init__(f"Database not connected: {self.reason}")


def effective_environment(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, str]:
    """The environment with ``.env`` of the working directory underneath it.

    Variables set in the environment win over ``.env``, as with the old system. Use it for
    every setting that may come from ``.env`` (``DATABASE_URL``, ``COCKPIT_SECRET_KEY``).
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else Path(cwd)
    merged: dict[str, str] = {}
    dotenv_file = cwd / ".env"
    if dotenv_file.is_file():
        merged.update(
            {key: value for key, value in dotenv_values(dotenv_file).items() if value is not None}
        )
    merged.update({key: value for key, value in environ.items() if value != ""})
    return merged


def resolve_database_url(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> str:
    """Return the database URL to use, normalised for SQLAlchemy.

    Order: ``DATABASE_URL`` in the environment, then in ``.env`` in the working directory
    (the environment wins, as with the old system), then ``sqlite:///<cwd>/cockpit.db``.
    """
    cwd = Path.cwd() if cwd is None else Path(cwd)
    url = (effective_environment(environ, cwd).get("DATABASE_URL") or "").strip()
    if not url:
        url = f"sqlite:///{DEFAULT_SQLITE_FILE}"
    return normalise_database_url(url, cwd)


def normalise_database_url(url: str, cwd: Path | None = None) -> str:
    """Spell a user-given URL the way SQLAlchemy needs it.

    ``postgres://`` and ``postgresql://`` get the psycopg 3 driver; a relative SQLite path is
    made absolute against `cwd`, so the key file beside it and the database agree on where
    they are whatever the process directory is.
    """
    url = url.strip()
    for prefix in _POSTGRES_PREFIXES:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        path = sqlite_path(url)
        if path is not None and not path.is_absolute():
            base = Path.cwd() if cwd is None else Path(cwd)
            parsed = make_url(url)
            # abspath, not resolve(): keep the path the user gave, symlinks included.
            absolute = os.path.abspath(base / path)
            return parsed.set(database=absolute).render_as_string(hide_password=False)
    return url


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names, or None for in-memory databases and other backends."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def is_sqlite(url: str) -> bool:
    """True when `url` names a SQLite database (the embedded default)."""
    return url.strip().startswith("sqlite")


def mask_url(url: str | URL) -> str:
    """Render `url` with its password (also a ``password=`` query value) replaced by ``***``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", str(url))
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def create_engine_for(url: str, *, foreign_keys: bool = True) -> Engine:
    """Build an engine for `url`; raise DatabaseNotConnected for a URL we cannot use.

    SQLite gets foreign keys enforced (cascades depend on it), a busy timeout so concurrent
    writers wait instead of failing, and real transactions: SQLAlchemy emits BEGIN itself
    (the sqlite3 driver otherwise skips it before SELECT and SAVEPOINT). This is why the
    driver-level ``AUTOCOMMIT`` isolation level must not be used with these engines.
    ``foreign_keys=False`` is for migrations only: SQLite's table rebuilds would otherwise
    cascade-delete child rows when the old table is dropped.

    PostgreSQL pings pooled connections before use and gives up connecting after a timeout.
    """
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            engine = sa.create_engine(
                parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
            )
            _configure_sqlite(engine, foreign_keys=foreign_keys)
            return engine
        if backend == "postgresql":
            return sa.create_engine(
                parsed,
                pool_pre_ping=True,
                connect_args=_postgres_connect_args(parsed),
            )
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseNotConnected(
            f"driver for {parsed.drivername!r} is not installed ({exc}); "
            f"use postgresql://... (psycopg 3) or sqlite:///PATH"
        ) from None
    raise DatabaseNotConnected(
        f"unsupported URL scheme {parsed.drivername!r} in {mask_url(parsed)}; "
        f"use postgresql://... or sqlite:///PATH"
    )


KEEPALIVE = {"idle": 30, "interval": 10, "count": 3}


def _postgres_connect_args(url: URL) -> dict[str, object]:
    """TCP keepalives both ways: when a client host vanishes (not a killed process, whose
    socket closes at once), the server ends its session, and the apply locks it holds, within
    about a minute instead of the kernel's two hours; and the client notices a vanished server.
    The server side is set per session (`tcp_keepalives_*`) unless the URL brings its own
    `options`."""
    args: dict[str, object] = {
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
        "keepalives": 1,
        **{f"keepalives_{name}": value for name, value in KEEPALIVE.items()},
    }
    if "options" not in url.query:
        args["options"] = " ".join(f"-c tcp_keepalives_{name}={value}" for name, value in KEEPALIVE.items())
    return args


def require_sqlite_file(url: str) -> None:
    """Raise DatabaseNotConnected when `url` names a SQLite file that does not exist: SQLite
    would create an empty one on connect, which every command but `db upgrade` then leaves
    behind, unmigrated."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise DatabaseNotConnected(f"no database at {path}: run `cockpit db upgrade` first, which creates it")


def connect_check(engine: Engine) -> None:
    """Open a connection and run a trivial query; raise DatabaseNotConnected saying why."""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except DBAPIError as exc:
        raise DatabaseNotConnected(explain_connection_error(exc, engine.url)) from None


def explain_connection_error(exc: BaseException, url: URL) -> str:
    """Turn a driver error from connecting into a one-line reason without secrets."""
    original = getattr(exc, "orig", None) or exc
    message = str(original)
    if url.password:
        message = message.replace(str(url.password), "***")
    where = _where(url)
    if url.get_backend_name() == "sqlite":
        if "unable to open database file" in message:
            return (
                f"cannot open the SQLite file {url.database} "
                f"(does its directory exist and is it writable?)"
            )
        return f"SQLite error on {url.database}: {_first_line(message)}"
    checks: list[tuple[str, str]] = [
        (
            r"Connection refused",
            f"the server at {where} refused the connection (is PostgreSQL running there?)",
        ),
        (
            r'database "([^"]+)" does not exist',
            f'database "{{0}}" does not exist on {where} (create it, or fix DATABASE_URL)',
        ),
        (
            r'password authentication failed for user "([^"]+)"',
            f'authentication failed for user "{{0}}" on {where}',
        ),
        (
            r'role "([^"]+)" does not exist',
            f'authentication failed: role "{{0}}" does not exist on {where}',
        ),
        (
            r"no password supplied",
            f"authentication failed: {where} wants a password and the URL has none",
        ),
        (
            r"(?:failed to resolve host|could not translate host name) '?([^':\s\"]+)",
            "unknown host {0}",
        ),
        (r"timeout expired|timed out", f"timed out connecting to {where}"),
    ]
    for pattern, reason in checks:
        found = re.search(pattern, message)
        if found:
            return reason.format(*found.groups())
    return f"{_first_line(message)} ({mask_url(url)})"


def _parse(url: str) -> URL:
    try:
        return make_url(normalise_database_url(url))
    except ArgumentError:
        raise DatabaseNotConnected(
            f"cannot parse the database URL {mask_url(url)!r}; "
            f"use postgresql://USER:PASSWORD@HOST:PORT/DB or sqlite:///PATH"
        ) from None


def _configure_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    pragma = "ON" if foreign_keys else "OFF"

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver (see create_engine_for), then set pragmas,
        # which only work outside a transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA foreign_keys={pragma}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin")  # see write_transaction
        connection.exec_driver_sql(f"BEGIN {mode}" if mode else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """`engine.begin()` for a transaction that writes. On SQLite it begins IMMEDIATE, taking the
    write lock first: a transaction that reads, then writes, while another connection writes
    (a serving gateway absorbs its spool twice a second) would otherwise be refused at once
    with "database is locked", as SQLite refuses a read lock's upgrade that could deadlock
    rather than wait for it. Elsewhere it is `engine.begin()`."""
    with engine.connect() as connection:
        connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            yield connection


def _where(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
