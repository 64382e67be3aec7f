"""Virtual keys: issued per user of an account, stored only as a SHA-256 hash.

A key is `ck-` + 43 URL-safe characters (`secrets.token_urlsafe(32)`, 256 bits). The database
keeps its hash, a short prefix that lets people tell their keys apart, the user, the domain it
serves (NULL: both), an optional role and agent. Keys are runtime data: a plan never deletes
them; they go only with their account, or by `revoke`.

The user must be known to the account's config: an account admin (who may be in no directory)
or a user of the key's domain's directory (of either directory when the key serves both). The
role may not exceed what the config gives the user (`allowed_roles`); the same check runs when
the server looks a key up, so a key loses what the config takes away.

A directory user whose `status` is `suspended` counts as not in that directory: no key is issued
for that domain, and an existing key stops serving it (`user_suspended`, `suspended_domains`;
the proxy and the Zitadel backend ask the same functions). Keys are not issued in a suspended
account either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cockpit.config.models import BaseRole
from cockpit.store.tables import DIRECTORIES, DOMAINS, account_admins, accounts, agents, virtual_keys
from cockpit.store.engine import write_transaction

KEY_PREFIX = "ck-"
PREFIX_LENGTH = len(KEY_PREFIX) + 8
ROLES: tuple[str, ...] = get_args(BaseRole)


class KeyRefused(Exception):
    """A key cannot be issued, found or revoked; the message says why and what to do."""


@dataclass(frozen=True)
class KeyRecord:
    """A stored key as `keys list` shows it: never the key itself."""

    id: uuid.UUID
    prefix: str
    user_email: str
    domain: str | None
    role: str | None
    agent_name: str | None
    created_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class IssuedKey:
    """A new key: `key` exists only here, once."""

    key: str
    record: KeyRecord


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def suspended_domains(connection: Connection, account_id: uuid.UUID, email: str) -> frozenset[str]:
    """The domains whose directory lists `email` with status `suspended`."""
    email = email.strip().lower()
    found = set()
    for name in DOMAINS:
        users = DIRECTORIES[name].users
        status = connection.execute(sa.select(users.c.status).where(users.c.account_id == account_id, users.c.email == email)).scalar()
        if status == "suspended":
            found.add(name)
    return frozenset(found)


def user_suspended(connection: Connection, account_id: uuid.UUID, email: str, domain: str | None = None) -> bool:
    """Whether `email` is suspended for `domain`: listed as suspended in that domain's directory.
    For None (both domains): listed in some directory, suspended in every one that lists them,
    and not an account admin (an admin needs no directory, so stays served)."""
    email = email.strip().lower()
    suspended = suspended_domains(connection, account_id, email)
    if domain is not None:
        return domain in suspended
    if not suspended:
        return False
    for name in DOMAINS:
        if name in suspended:
            continue
        users = DIRECTORIES[name].users
        if connection.execute(sa.select(users.c.id).where(users.c.account_id == account_id, users.c.email == email)).first():
            return False  # active in another directory
    return _admin_role(connection, account_id, email) is None


def _admin_role(connection: Connection, account_id: uuid.UUID, email: str) -> str | None:
    return connection.execute(
        sa.select(account_admins.c.role).where(account_admins.c.account_id == account_id, sa.func.lower(account_admins.c.email) == email)
    ).scalar()


def allowed_roles(connection: Connection, account_id: uuid.UUID, email: str, domain: str | None) -> frozenset[str] | None:
    """The roles the config gives `email` in the account for a key of `domain` (None: both):
    the admin row's role, `end_user` for a known user, and `<domain>_org_admin` /
    `<domain>_team_admin` for org and team admins of the directories the key serves.
    None when the user is neither an admin nor in those directories. A user suspended in a
    directory is not in it, so a key of a user suspended after issue stops working."""
    email = email.strip().lower()
    roles: set[str] = set()
    known = False
    admin_role = _admin_role(connection, account_id, email)
    if admin_role is not None:
        known = True
        roles.add(admin_role)
    for name in (domain,) if domain else DOMAINS:
        tables = DIRECTORIES[name]
        user = connection.execute(
            sa.select(tables.users.c.id, tables.users.c.status).where(tables.users.c.account_id == account_id, tables.users.c.email == email)
        ).first()
        if user is None or user.status == "suspended":
            continue
        user_id = user.id
        known = True
        if connection.execute(sa.select(sa.literal(1)).where(tables.org_admins.c.user_id == user_id).limit(1)).first():
            roles.add(f"{name}_org_admin")
        member = tables.team_members
        if connection.execute(sa.select(sa.literal(1)).where(member.c.user_id == user_id, member.c.role == "admin").limit(1)).first():
            roles.add(f"{name}_team_admin")
    if not known:
        return None
    return frozenset(roles | {"end_user"})


def default_role(connection: Connection, account_id: uuid.UUID, email: str) -> str:
    """A key without `--role`: the admin row's role for an account admin, else end_user."""
    role = connection.execute(
        sa.select(account_admins.c.role).where(account_admins.c.account_id == account_id, sa.func.lower(account_admins.c.email) == email.strip().lower())
    ).scalar()
    return role or "end_user"


def create_key(
    engine: Engine,
    account: str,
    user: str,
    *,
    domain: str | None = None,
    role: str | None = None,
    agent: str | None = None,
) -> IssuedKey:
    """Issue a key for `user` of `account`; raises KeyRefused for an unknown or suspended
    account, an unknown or suspended user, a role the config does not give, an unknown agent."""
    email = user.strip().lower()
    if domain is not None and domain not in DOMAINS:
        raise KeyRefused(f"unknown domain {domain!r}: use console or copilot, or leave --domain out for a key that serves both")
    if role is not None and role not in ROLES:
        raise KeyRefused(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    with write_transaction(engine) as connection:
        account_id = _account_id(connection, account)
        status = connection.execute(sa.select(accounts.c.status).where(accounts.c.id == account_id)).scalar()
        if status != "active":
            raise KeyRefused(f"account '{account}' is {status}: no keys are issued in it until the config makes it active and is applied")
        if user_suspended(connection, account_id, email, domain):
            where = f"the {domain} directory" if domain else f"every directory that lists them ({', '.join(sorted(suspended_domains(connection, account_id, email)))})"
            raise KeyRefused(f"{email} is suspended in {where} of account '{account}': set their status to active in the config and apply it before issuing a key")
        allowed = allowed_roles(connection, account_id, email, domain)
        if allowed is None:
            where = f"the {domain} directory" if domain else "the console or copilot directory"
            raise KeyRefused(f"{email} is neither an admin of account '{account}' nor a user in {where}: add them to the config and apply it first")
        if role is not None and role not in allowed:
            raise KeyRefused(f"{email} does not hold the role {role} in account '{account}' (the config gives them: {', '.join(sorted(allowed))})")
        if agent is not None:
            if domain == "console":
                raise KeyRefused("agents are a copilot concept: a key for an agent needs --domain copilot (or no --domain)")
            if connection.execute(sa.select(agents.c.id).where(agents.c.account_id == account_id, agents.c.name == agent)).scalar() is None:
                raise KeyRefused(f"account '{account}' has no agent named '{agent}'")
        key = new_key()
        values = {
            "id": uuid.uuid4(),
            "account_id": account_id,
            "key_hash": hash_key(key),
            "key_prefix": key[:PREFIX_LENGTH],
            "user_email": email,
            "domain": domain,
            "role": role,
            "agent_name": agent,
        }
        connection.execute(virtual_keys.insert().values(**values))
        row = connection.execute(_records().where(virtual_keys.c.id == values["id"])).one()
    return IssuedKey(key, _record(row))


def list_keys(engine: Engine, account: str) -> list[KeyRecord]:
    """The account's keys, newest first, revoked ones included."""
    with engine.connect() as connection:
        account_id = _account_id(connection, account)
        rows = connection.execute(
            _records().where(virtual_keys.c.account_id == account_id).order_by(virtual_keys.c.created_at.desc(), virtual_keys.c.key_prefix)
        ).all()
    return [_record(row) for row in rows]


def revoke_key(engine: Engine, account: str, which: str) -> tuple[KeyRecord, bool]:
    """Revoke the key named by its id, its prefix or the key itself; (record, revoked now).
    Revoking a revoked key changes nothing and says so (False)."""
    which = which.strip()
    with write_transaction(engine) as connection:
        account_id = _account_id(connection, account)
        query = _records().where(virtual_keys.c.account_id == account_id)
        given_whole = False
        try:
            query = query.where(virtual_keys.c.id == uuid.UUID(which))
        except ValueError:
            if len(which) > PREFIX_LENGTH:
                given_whole = True
                query = query.where(virtual_keys.c.key_hash == hash_key(which))
            else:
                query = query.where(virtual_keys.c.key_prefix == which)
        rows = connection.execute(query).all()
        if not rows:
            # A key given whole (or mistyped) is a secret: never repeat it, not even in part.
            named = "that matches the key given (not repeated here)" if given_whole else repr(which)
            raise KeyRefused(f"account '{account}' has no key {named}: `cockpit keys list --account {account}` shows ids and prefixes")
        if len(rows) > 1:
            raise KeyRefused(f"{len(rows)} keys of account '{account}' start with {which!r}: revoke by id ({', '.join(str(r.id) for r in rows)})")
        row = rows[0]
        if row.revoked_at is not None:
            return _record(row), False
        connection.execute(virtual_keys.update().where(virtual_keys.c.id == row.id).values(revoked_at=dt.datetime.now(dt.timezone.utc)))
        row = connection.execute(_records().where(virtual_keys.c.id == row.id)).one()
    return _record(row), True


def _account_id(connection: Connection, account: str) -> uuid.UUID:
    account_id = connection.execute(sa.select(accounts.c.id).where(accounts.c.name == account)).scalar()
    if account_id is None:
        raise KeyRefused(f"no account named '{account}'")
    return account_id


def _records() -> sa.Select:
    c = virtual_keys.c
    return sa.select(c.id, c.key_prefix, c.user_email, c.domain, c.role, c.agent_name, c.created_at, c.last_used_at, c.revoked_at)


def _record(row: sa.Row) -> KeyRecord:
    return KeyRecord(row.id, row.key_prefix, row.user_email, row.domain, row.role, row.agent_name, row.created_at, row.last_used_at, row.revoked_at)
