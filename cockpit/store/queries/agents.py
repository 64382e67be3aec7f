"""Copilot agents as lists, and the guardrail presets each agent makes mandatory."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.filters import by_ref
from cockpit.store.queries.paging import Page, RowPage, page_of
from cockpit.store.tables import agent_guardrails, agents, guardrail_presets


def agents_page(connection: Connection, account_id: uuid.UUID, at: Page) -> RowPage:
    query = sa.select(agents).where(agents.c.account_id == account_id).order_by(agents.c.created_at.desc(), agents.c.name)
    return page_of(connection, query, at)


def agent_by_ref(connection: Connection, account_id: uuid.UUID, ref: str) -> Any | None:
    """The account's agent named by its id or its name."""
    return connection.execute(sa.select(agents).where(agents.c.account_id == account_id, by_ref(agents, ref))).first()


def mandatory_presets(connection: Connection, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """Each agent's guardrail presets (`id`, `code`), in the order they were linked."""
    found: dict[uuid.UUID, list[Any]] = {i: [] for i in agent_ids}
    if agent_ids:
        for link in connection.execute(
            sa.select(agent_guardrails.c.agent_id, guardrail_presets.c.id, guardrail_presets.c.code)
            .join(guardrail_presets, agent_guardrails.c.preset_id == guardrail_presets.c.id)
            .where(agent_guardrails.c.agent_id.in_(agent_ids))
            .order_by(agent_guardrails.c.created_at, guardrail_presets.c.code)
        ):
            found[link.agent_id].append(link)
    return found
