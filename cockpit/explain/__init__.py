"""`cockpit explain`: what a user gets, and why, from the applied state or from a config.

`from_database` reads the account's applied state with the reader the API's snapshots use
(`store.reader.read_accounts`, narrowed to the models of the account's workspace) and the
credits used in the current cycle window (`usage.scope_usage`); `from_config` validates a
tenant repo and explains its desired state, so a change can be explained before it is applied
(nothing is used yet there). Every answer carries the file:line:column that decided it: from
the database, where the last apply recorded it, relative to the tenant repo.
Both return the report of `report.user_report`; `render.render_report` prints it for people.

The JSON report (``cockpit explain user EMAIL --account NAME --json``), version 1::

    {
      "version": 1,
      "account": "acme", "user": "alice@acme.com",
      "admin_role": null | "account_admin" | ...,      # when the user is an account admin
      "source": {"kind": "database", "workspace": "default"} | {"kind": "config", "config": PATH},
      "domains": ["console", "copilot"],                # or the one --domain
      "directory": {DOMAIN: {"member": bool, "display_name", "teams": [...], "orgs": [...]}},
      "models":    {DOMAIN: [{"model", "allowed", "level", "why", "sources"}]},
      "features":  {DOMAIN: [{"feature", "enabled", "config", "level", "why", "sources"}]},
      "rate_limits": {DOMAIN: [{"scope", "per_user", "model", "rpm", "tpm", "key", "why", "sources"}]},
      "guardrails": [{"code", "name", "domain", "levels", "why", "sources"}],
      # copilot only:
      "agents":      [{"name", "via", "why", "sources"}],
      "connections": [{"name", "via", "can_manage", "why", "sources"}],
      "marketplace": [{"listing", "title", "mode", "via", "why", "sources"}],
      "budget": {"plan", "cycle", "window": {"start", "end"} | null, "why",
                 "chain": [{"scope", "credits", "overflow_cap", "limit", "base_credits",
                            "override", "source", "reason", "inside", "used", "remaining",
                            "why", "sources"}]}
    }

`level` is the chain level that decided (`user`, `team`, `org`, `account`, or `feature_pack`);
each source is ``{"type", "key", "scope", "detail", "origin"}`` with `origin` the config's
``file:line:column`` (from the database: as the last apply recorded it, relative to the tenant
repo; null for a resource applied before origins were recorded). The budget chain runs from the most
specific allocation to the account; `remaining` = credits + overflow_cap − used. `rate_limits`
lists every limit on the user's chain (each must pass; `model` null: every model), with the
counter `key` the gateway counts it on.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from cockpit.explain.render import render_report
from cockpit.explain.report import REPORT_VERSION, is_known, user_report
from cockpit.budgets.usage import current_window, cycle_window, no_usage, scope_usage
from cockpit.policy.graph import DOMAINS, AccountGraph, account_graph
from cockpit.resources.state import State

__all__ = ["REPORT_VERSION", "ExplainError", "from_config", "from_database", "render_report"]


class ExplainError(Exception):
    """Bad input (unknown account or user, invalid config): one clear message, exit 1."""


def from_database(engine: Engine, account: str, user: str, domains: tuple[str, ...] = DOMAINS, workspace: str | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """The report for `user` from the applied state; `workspace` only checks the account's.

    It reads the account alone, not through the server's snapshot cache: a one-shot command
    has nothing to cache, and its catalog is the account's workspace's, not every workspace's."""
    from cockpit.store.queries.accounts import account_named
    from cockpit.store.reader import read_accounts

    user = user.strip().lower()
    with engine.connect() as connection:
        row = account_named(connection, account)
        if row is None:
            raise ExplainError(f"account {account!r} is not in the database")
        if workspace is not None and workspace != row.workspace:
            raise ExplainError(f"account {account!r} is managed by workspace {row.workspace!r}, not {workspace!r}")
        state = read_accounts(connection, {row.id: account}, row.workspace).state
        graph = account_graph(state, account)
        admins = _admins(state, account)
        _check_user(graph, user, domains, admins)
        plan = graph.active_plan()
        window, used = None, None
        if plan is not None and "copilot" in domains:
            window = current_window(connection, row.id, graph.budget_plans[plan].fields.get("cycle"), now)
            used = scope_usage(connection, row.id, window, set(graph.allocations.get(plan, {})))
    source = {"kind": "database", "workspace": row.workspace}
    return user_report(graph, user, domains, source, used, window, admins.get(user))


def from_config(path: Path, account: str, user: str, domains: tuple[str, ...] = DOMAINS, now: dt.datetime | None = None) -> dict[str, Any]:
    """The report for `user` from the validated config at `path`, before it is applied."""
    from cockpit.config.validate import validate_path
    from cockpit.resources.desired import desired_state

    user = user.strip().lower()
    if not path.exists():
        raise ExplainError(f"{path}: no such file or directory")
    validation = validate_path(path)
    if not validation.ok:
        errors = [str(d) for d in validation.diagnostics if d.severity == "error"]
        raise ExplainError("\n".join([*errors, f"error: the config at {path} is invalid: {len(errors)} error(s); run `cockpit validate {path}`"]))
    if account not in validation.tenant.accounts:
        raise ExplainError(f"account {account!r} is not declared in the config at {path}")
    state = desired_state(validation.tenant, fingerprint=lambda *args: None)
    state = State.of(r for r in state if r.account in (account, None))
    graph = account_graph(state, account)
    admins = _admins(state, account)
    _check_user(graph, user, domains, admins)
    plan = graph.active_plan()
    window = cycle_window(graph.budget_plans[plan].fields.get("cycle"), now) if plan else None
    return user_report(graph, user, domains, {"kind": "config", "config": str(path)}, no_usage(), window, admins.get(user))


def _admins(state: State, account: str) -> dict[str, str]:
    return {r.key[0]: str(r.fields.get("role") or "account_admin") for r in state.of_type("account_admin", account)}


def _check_user(graph: AccountGraph, user: str, domains: tuple[str, ...], admins: dict[str, str]) -> None:
    if not is_known(graph, user, domains, admins):
        where = " or ".join(domains) + " directory"
        raise ExplainError(f"user {user!r} is not in the {where} of account {graph.name!r}, nor one of its admins")

