"""Reads a running console-cockpit's PostgreSQL tables, in one READ ONLY transaction.

Only SELECTs, inside `SET TRANSACTION READ ONLY`: the old system keeps running while it is
adopted, and PostgreSQL itself refuses any write in that transaction. Rows come back as dicts,
oldest first (created_at, then id), so "the newest row" and "the first holder of a name" are
decided the same way on every run.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, ProgrammingError

from cockpit.adopt.output import ImportFailure
from cockpit.store.engine import normalise_database_url

Rows = list[dict[str, Any]]

ACCOUNT_TABLES = (
    "Alchemi_AccountAdminTable",
    "Alchemi_AccountSSOConfig",
    "Alchemi_AccountAllocationTable",
    "Alchemi_CopilotOrgTable",
    "Alchemi_CopilotTeamTable",
    "Alchemi_CopilotUserTable",
    "Alchemi_CopilotTeamMembershipTable",
    "Alchemi_ConsoleOrgTable",
    "Alchemi_ConsoleTeamTable",
    "Alchemi_ConsoleUserTable",
    "Alchemi_ConsoleTeamMembershipTable",
    "Alchemi_CopilotBudgetPlanTable",
    "Alchemi_CopilotBudgetAllocationTable",
    "Alchemi_CopilotBudgetOverrideTable",
    "Alchemi_CopilotConnectionTable",
    "Alchemi_CopilotConnectionGrantTable",
    "Alchemi_CopilotGuardrailPresetTable",
    "Alchemi_CopilotGuardrailAssignmentTable",
    "Alchemi_CopilotAgentTable",
    "Alchemi_CopilotAgentGrantTable",
    "Alchemi_ModelGrantTable",
    "Alchemi_FeatureEntitlementTable",
    "Alchemi_CopilotMarketplaceTable",
    "Alchemi_CopilotMarketplaceGrantTable",
)
"""The tables of §16 that hold an account's configuration, each with an `account_id` column.
The usage ledger and cycle history are runtime data and are not read."""
ACCOUNTS = "Alchemi_AccountTable"
MODELS = "LiteLLM_ProxyModelTable"


def _ordered(connection: sa.Connection, table: str, where: str = "", params: dict | None = None) -> Rows:
    order = "created_at, id" if table != MODELS else "created_at, model_id"
    if table == ACCOUNTS:
        order = "created_at, account_id"
    query = sa.text(f'SELECT * FROM "{table}" {where} ORDER BY {order}')
    return [dict(row._mapping) for row in connection.execute(query, params or {})]


def read_console_cockpit(url: str, accounts: tuple[str, ...] = ()) -> tuple[Rows, dict[str, Rows], Rows]:
    """(accounts, table → rows of those accounts, catalog models) from the database at `url`.

    `accounts` names accounts by `account_name` (all of them when empty); an unknown name is an
    ImportFailure naming the ones that exist."""
    try:
        engine = sa.create_engine(normalise_database_url(url))
    except Exception:  # noqa: BLE001 — a malformed URL; its text may hold a password
        raise ImportFailure("cannot use the database URL: check its form (postgresql://USER@HOST:PORT/NAME)") from None
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(sa.text("SET TRANSACTION READ ONLY"))
            account_rows = _ordered(connection, ACCOUNTS)
            if accounts:
                names = {r["account_name"] for r in account_rows}
                missing = [a for a in accounts if a not in names]
                if missing:
                    raise ImportFailure(
                        f"no account named {', '.join(map(repr, missing))} in {ACCOUNTS}; "
                        f"it has: {', '.join(sorted(names)) or 'none'}"
                    )
                account_rows = [r for r in account_rows if r["account_name"] in accounts]
            ids = [r["account_id"] for r in account_rows]
            tables = {
                table: _ordered(connection, table, "WHERE account_id = ANY(:ids)", {"ids": ids})
                for table in ACCOUNT_TABLES
            }
            models = _ordered(connection, MODELS)
    except ImportFailure:
        raise
    except ProgrammingError as exc:
        raise ImportFailure(
            f"the database does not look like console-cockpit's: {str(exc.orig).splitlines()[0]}"
        ) from None
    except DBAPIError as exc:
        raise ImportFailure(f"Database not connected: {str(exc.orig).splitlines()[0]}") from None
    finally:
        engine.dispose()
    return account_rows, tables, models
