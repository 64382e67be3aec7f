"""A lost or failing database, said in one line for people."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from cockpit.store.engine import explain_connection_error


def database_problem(exc: OperationalError, engine: Engine) -> str:
    """One line naming what went wrong with the database, without its password."""
    reason = explain_connection_error(exc, engine.url)
    lost = exc.connection_invalidated or "connect" in reason.lower()  # dropped, refused, timed out
    return f"Database not connected: {reason}" if lost else f"Database error: {reason}"
