"""Copilot marketplace listings, newest first; a listing is named by its id or as
`entity_type:entity_name`."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.filters import as_uuid
from cockpit.store.tables import marketplace_listings as listings


def listings_of(
    connection: Connection, account_id: uuid.UUID, *, title: str | None, entity_type: str | None, published_only: bool
) -> list[Any]:
    """The account's listings; `title` matches a part of the title, any case."""
    query = sa.select(listings).where(listings.c.account_id == account_id).order_by(
        listings.c.created_at.desc(), listings.c.entity_type, listings.c.entity_name
    )
    if title:
        query = query.where(sa.func.lower(listings.c.title).contains(title.strip().lower(), autoescape=True))
    if entity_type:
        query = query.where(listings.c.entity_type == entity_type.strip().lower())
    if published_only:
        query = query.where(listings.c.published.is_(True))
    return list(connection.execute(query).all())


def listing_by_ref(connection: Connection, account_id: uuid.UUID, ref: str) -> Any | None:
    query = sa.select(listings).where(listings.c.account_id == account_id)
    by_id = as_uuid(ref)
    if by_id:
        query = query.where(listings.c.id == by_id)
    else:
        entity_type, _, entity_name = ref.partition(":")
        query = query.where(listings.c.entity_type == entity_type, listings.c.entity_name == entity_name)
    return connection.execute(query).first()
