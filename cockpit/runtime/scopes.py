"""Scopes between the database's natural keys and the old API's row ids, over one account's
snapshot: the one place this translation is written.

The database stores a scope as (`scope_type`, `scope_key`): the org name, `org/team`, the
user's e-mail, the agent's name, `''` for account and pool. The old API spoke in row ids
(`scope_id`), so responses carry both, and parameters accept either. Agents live in the copilot
domain whatever the domain asked about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from cockpit.config.scopes import Scope
from cockpit.store.queries.filters import as_uuid

if TYPE_CHECKING:
    from cockpit.runtime.snapshots import AccountSnapshot


def scope_text(scope_type: str, scope_key: str) -> str:
    """A scope as the config writes it: `account`, `org:research`, `team:research/ml`."""
    return scope_type if not scope_key else f"{scope_type}:{scope_key}"


def _address(snapshot: AccountSnapshot, domain: str, scope_type: str, key: str) -> tuple[str, str | None, tuple[str, ...]]:
    """The snapshot address of the org, team, user or agent a scope names."""
    if scope_type == "agent":
        return ("agent", snapshot.name, (key,))
    parts = tuple(key.split("/", 1)) if scope_type == "team" else (key,)
    return (f"{domain}_{scope_type}", snapshot.name, parts)


def scope_id(snapshot: AccountSnapshot, domain: str, scope: Scope | tuple[str, str]) -> str | None:
    """The old API's `scope_id` of a scope: the row id of its org, team, user or agent, the
    account id for `account`, `''` for `pool`; None when the scope names nothing."""
    scope_type, key = scope
    if scope_type == "account":
        return str(snapshot.account_id)
    if scope_type == "pool":
        return ""
    found = snapshot.ids.get(_address(snapshot, domain, scope_type, key))
    return str(found) if found else None


def scope_fields(snapshot: AccountSnapshot, domain: str, scope: Scope | tuple[str, str]) -> dict[str, Any]:
    """`scope_type`, `scope_id` (old), `scope_key` and `scope` (natural) of one scope."""
    scope_type, key = scope
    return {
        "scope_type": scope_type,
        "scope_id": scope_id(snapshot, domain, scope),
        "scope_key": key,
        "scope": scope_text(scope_type, key),
    }


def find_scope(snapshot: AccountSnapshot, domain: str, scope_type: str, value: str) -> Scope:
    """The org, team, user or agent named by a row id or a natural key (org name, `org/team`,
    e-mail, agent name); 404 `copilot team not found` when this account has none (another
    account's id too)."""
    value = value.strip()
    by_id = as_uuid(value)
    if by_id is not None:
        address = snapshot.by_id.get(by_id)
        if address is not None and address[0] == _address(snapshot, domain, scope_type, "")[0]:
            return Scope(scope_type, "/".join(address[2]))
    else:
        key = value.lower() if scope_type == "user" else value
        if _address(snapshot, domain, scope_type, key) in snapshot.ids:
            return Scope(scope_type, key)
    raise HTTPException(404, f"{'copilot' if scope_type == 'agent' else domain} {scope_type} not found")


def scope_key(snapshot: AccountSnapshot, domain: str, scope_type: str, value: str) -> str:
    """The natural key of any scope a parameter names: `''` for account (whose id or name must
    be this account's: 400 otherwise) and pool, else as `find_scope`."""
    value = value.strip()
    if scope_type in ("account", "pool"):
        if scope_type == "account" and value and value not in (str(snapshot.account_id), snapshot.name):
            raise HTTPException(400, "account scope_id must match current account_id")
        return ""
    if scope_type not in ("org", "team", "user", "agent"):
        raise HTTPException(400, f"unknown scope_type {scope_type}")
    return find_scope(snapshot, domain, scope_type, value).key
