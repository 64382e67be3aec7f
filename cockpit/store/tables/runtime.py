"""Runtime data: what happened, as opposed to what the config wants.

A plan never deletes these rows. ``account_id`` here is an indexed column without a foreign
key, so the ledger, audit trail, cycle records and apply journal outlive a hard-deleted
account. Issued keys are the exception: a key is useless without its account, so it cascades.
Scopes in the ledger are natural keys (org name, ``org/team``, email) as the config names them.
"""

from __future__ import annotations

import sqlalchemy as sa

from cockpit.store.tables.base import (
    DOMAINS,
    EMAIL_LENGTH,
    FACTOR,
    LEDGER_MONEY,
    NAME_LENGTH,
    SCOPE_KEY_LENGTH,
    UtcDateTime,
    account_column,
    created_at_column,
    id_column,
    json_column,
    metadata,
    one_of,
    parent_column,
    timestamp_columns,
)

usage_ledger = sa.Table(
    "usage_ledger",
    metadata,
    id_column(),
    sa.Column("account_id", sa.Uuid(), nullable=False),
    sa.Column("domain", sa.String(16), nullable=False),
    sa.Column("org_key", sa.String(NAME_LENGTH)),
    sa.Column("team_key", sa.String(SCOPE_KEY_LENGTH)),
    sa.Column("user_email", sa.String(EMAIL_LENGTH)),
    sa.Column("agent_name", sa.String(NAME_LENGTH)),
    sa.Column("model_name", sa.String(NAME_LENGTH)),
    sa.Column("connection_name", sa.String(NAME_LENGTH)),
    sa.Column("guardrail_code", sa.String(NAME_LENGTH)),
    sa.Column("raw_cost", LEDGER_MONEY, nullable=False, server_default=sa.text("0")),
    sa.Column("credit_factor", FACTOR, nullable=False, server_default=sa.text("1")),
    sa.Column("credits", LEDGER_MONEY, nullable=False, server_default=sa.text("0")),
    # The proxy's request id makes recording a request idempotent; NULLs do not collide.
    sa.Column("request_id", sa.String(200)),
    json_column("metadata"),
    created_at_column(),
    sa.UniqueConstraint("request_id"),
    sa.Index("ix_usage_ledger_account_id_created_at", "account_id", "created_at"),
    one_of("domain", DOMAINS),
)

budget_cycles = sa.Table(
    "budget_cycles",
    metadata,
    id_column(),
    sa.Column("account_id", sa.Uuid(), nullable=False),
    sa.Column("plan_name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("window_start", UtcDateTime(), nullable=False),
    sa.Column("window_end", UtcDateTime(), nullable=False),
    sa.Column("used_credits", LEDGER_MONEY, nullable=False, server_default=sa.text("0")),
    sa.Column("overflow_charge", LEDGER_MONEY, nullable=False, server_default=sa.text("0")),
    sa.Column("rollover_credits", LEDGER_MONEY, nullable=False, server_default=sa.text("0")),
    json_column("summary"),
    created_at_column(),
    # Renewing the same window twice finds the record instead of writing a second one.
    sa.UniqueConstraint("account_id", "plan_name", "window_start"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    id_column(),
    # NULL for events outside any account (the model catalog).
    sa.Column("account_id", sa.Uuid()),
    sa.Column("domain", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(EMAIL_LENGTH), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("resource_key", sa.Text(), nullable=False),
    json_column("before", None, nullable=True),
    json_column("after", None, nullable=True),
    sa.Column("plan_id", sa.String(100)),
    sa.Column("commit_sha", sa.String(64)),
    sa.Column("apply_run_id", sa.Uuid(), index=True),
    created_at_column(),
    # When the event reached OpenObserve; NULL: not yet (the next apply or `cockpit audit ship`
    # sends it).
    sa.Column("shipped_at", UtcDateTime(), index=True),
    # Where the config declares (or, for a delete, declared) the resource: `file:line:column`.
    sa.Column("origin", sa.String(1024)),
    sa.Index("ix_audit_events_account_id_created_at", "account_id", "created_at"),
)

resource_origins = sa.Table(
    "resource_origins",
    metadata,
    # The row id of the resource, in whichever config table it lives (no foreign key: there
    # are many); the executor deletes the row with the resource, the account's go with it.
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("account_id", sa.Uuid(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True),
    # `file:line:column` of the config that declared it when it was last applied, relative to
    # the tenant repo: what explain, the effective views and the audit show.
    sa.Column("origin", sa.String(1024), nullable=False),
)

# One row per `cockpit apply`, committed before the run waits for its locks, so a process
# that times out waiting can name who holds them: actor, ``host`` and ``pid`` of the process,
# and the ``accounts`` (names, ``*catalog*`` for the model catalog) it locks.
apply_runs = sa.Table(
    "apply_runs",
    metadata,
    id_column(),
    sa.Column("workspace", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'running'")),
    sa.Column("plan_id", sa.String(100)),
    sa.Column("actor", sa.String(EMAIL_LENGTH)),
    sa.Column("commit_sha", sa.String(64)),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer()),
    json_column("accounts", "[]"),
    sa.Column("started_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("error", sa.Text()),
    sa.Index("ix_apply_runs_workspace_status", "workspace", "status"),
    one_of("status", ("running", "succeeded", "failed")),
)

# The apply lock on SQLite, and a record on both databases: one row per lock name (an account
# name or ``*catalog*``) with the run that last took it. On SQLite, writing these rows takes
# the database write lock, held until the apply transaction ends (see cockpit.store.locks);
# PostgreSQL locks with advisory locks and writes the rows once it holds them.
apply_locks = sa.Table(
    "apply_locks",
    metadata,
    id_column(),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("run_id", sa.Uuid(), nullable=False),
    sa.Column("locked_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("name"),
)

# The steps that run after the DB commit (Zitadel), in order, so a killed run resumes.
apply_journal = sa.Table(
    "apply_journal",
    metadata,
    id_column(),
    parent_column("run_id", "apply_runs.id"),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("account_id", sa.Uuid(), index=True),
    sa.Column("step_type", sa.String(64), nullable=False),
    json_column("payload"),
    sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'pending'")),
    sa.Column("result_ref", sa.String(300)),
    sa.Column("error", sa.Text()),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
    *timestamp_columns(),
    sa.UniqueConstraint("run_id", "seq"),
    one_of("status", ("pending", "done", "failed")),
)

# Only the SHA-256 of a key is stored; ``key_prefix`` lets people tell their keys apart.
# ``domain`` NULL means the key serves both domains.
virtual_keys = sa.Table(
    "virtual_keys",
    metadata,
    id_column(),
    account_column(index=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("key_prefix", sa.String(16), nullable=False),
    sa.Column("user_email", sa.String(EMAIL_LENGTH), nullable=False),
    sa.Column("domain", sa.String(16)),
    sa.Column("role", sa.String(64)),
    sa.Column("agent_name", sa.String(NAME_LENGTH)),
    created_at_column(),
    sa.Column("revoked_at", UtcDateTime()),
    sa.Column("last_used_at", UtcDateTime()),
    sa.UniqueConstraint("key_hash"),
    one_of("domain", DOMAINS),
)

# The proxy's budget counters: credits settled (`used`) and held by requests in flight
# (`reserved`) per account, cycle window and scope (`account`, `pool`, `org:NAME`,
# `team:ORG/TEAM`, `user:EMAIL`). A request reserves its maximum cost on every scope of its
# chain in one transaction, and settles the real cost in another, so concurrent requests never
# overspend. Redis holds the same counters when `REDIS_URL` is set.
budget_counters = sa.Table(
    "budget_counters",
    metadata,
    id_column(),
    sa.Column("account_id", sa.Uuid(), nullable=False),
    sa.Column("window_start", UtcDateTime(), nullable=False),
    sa.Column("scope", sa.String(SCOPE_KEY_LENGTH + 8), nullable=False),
    sa.Column("used", LEDGER_MONEY, nullable=False, server_default=sa.text("0")),
    sa.Column("reserved", LEDGER_MONEY, nullable=False, server_default=sa.text("0")),
    sa.UniqueConstraint("account_id", "window_start", "scope"),
)

# Reservations not yet settled, so that the credits held by a server that died mid-request are
# given back once `expires_at` has passed.
budget_reservations = sa.Table(
    "budget_reservations",
    metadata,
    id_column(),
    sa.Column("account_id", sa.Uuid(), nullable=False),
    sa.Column("window_start", UtcDateTime(), nullable=False),
    json_column("scopes", "[]"),
    sa.Column("amount", LEDGER_MONEY, nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# The rate limiter's counters in the database (without Redis): requests and tokens counted in
# one fixed minute (``window`` = Unix minute) per counter key (`cockpit.policy.rate_limits`).
# Rows of past minutes are deleted as new ones are made.
rate_counters = sa.Table(
    "rate_counters",
    metadata,
    id_column(),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("window", sa.BigInteger(), nullable=False),
    sa.Column("requests", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    sa.Column("tokens", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    sa.UniqueConstraint("key", "window"),
)
