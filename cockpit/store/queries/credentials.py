"""What the tenant resolver reads to recognise a caller: a virtual key by its hash, an
admin's role, an account by name or id, every account's Zitadel settings; and the one write
of the read API, a key's `last_used_at`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.tables import account_admins, accounts, virtual_keys


def virtual_key(connection: Connection, key_hash: str) -> Any | None:
    """The key with this hash and its account's name (`account_name`) and `status`."""
    k, a = virtual_keys.c, accounts.c
    query = (
        sa.select(k.id, k.account_id, k.user_email, k.domain, k.role, k.agent_name, k.revoked_at, k.last_used_at, a.name.label("account_name"), a.status)
        .join_from(virtual_keys, accounts, accounts.c.id == virtual_keys.c.account_id)
        .where(k.key_hash == key_hash)
    )
    return connection.execute(query).first()


def admin_role(connection: Connection, account_id: uuid.UUID, email: str) -> str | None:
    """The account-admin role of `email` (a lower-case e-mail) in the account, if any."""
    return connection.execute(
        sa.select(account_admins.c.role).where(account_admins.c.account_id == account_id, sa.func.lower(account_admins.c.email) == email)
    ).scalar()


def touch_key(connection: Connection, key_id: uuid.UUID, at: dt.datetime) -> None:
    connection.execute(virtual_keys.update().where(virtual_keys.c.id == key_id).values(last_used_at=at))


def account_by_name_or_id(connection: Connection, name_or_id: str) -> Any | None:
    """An account's id, name, status and Zitadel settings, named by its name or its id."""
    query = sa.select(accounts.c.id, accounts.c.name, accounts.c.status, accounts.c.zitadel)
    try:
        query = query.where(sa.or_(accounts.c.name == name_or_id, accounts.c.id == uuid.UUID(name_or_id)))
    except ValueError:
        query = query.where(accounts.c.name == name_or_id)
    return connection.execute(query.limit(1)).first()


def zitadel_settings(connection: Connection) -> list[Any]:
    """Every account's Zitadel settings."""
    return list(connection.execute(sa.select(accounts.c.zitadel)).scalars().all())
