"""Guardrail presets of a domain, their patterns, and where they are assigned (a preset's
`assign` list and the agents that name it)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.store.queries.filters import as_uuid
from cockpit.store.tables import agent_guardrails, agents, guardrail_assignments, guardrail_patterns, guardrail_presets

PATTERNS = (
    sa.select(guardrail_patterns, guardrail_presets.c.code, guardrail_presets.c.account_id)
    .join(guardrail_presets, guardrail_patterns.c.preset_id == guardrail_presets.c.id)
)
"""Patterns with their preset's code and account (patterns have no account column)."""


def _of_domain(account_id: uuid.UUID, domain: str) -> tuple[sa.ColumnElement[bool], ...]:
    return guardrail_presets.c.account_id == account_id, guardrail_presets.c.domain == domain


def presets_of(connection: Connection, account_id: uuid.UUID, domain: str) -> list[Any]:
    """The domain's presets, newest first."""
    query = sa.select(guardrail_presets).where(*_of_domain(account_id, domain))
    return list(connection.execute(query.order_by(guardrail_presets.c.created_at.desc(), guardrail_presets.c.code)).all())


def patterns_of_presets(connection: Connection, preset_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """Each preset's patterns, by name."""
    found: dict[uuid.UUID, list[Any]] = {i: [] for i in preset_ids}
    if preset_ids:
        for row in connection.execute(PATTERNS.where(guardrail_patterns.c.preset_id.in_(preset_ids)).order_by(guardrail_patterns.c.name)):
            found[row.preset_id].append(row)
    return found


def patterns_of(connection: Connection, account_id: uuid.UUID, domain: str, code: str | None, enabled: bool | None) -> list[Any]:
    """The domain's patterns, the most recently changed first; `code` narrows to one preset."""
    query = PATTERNS.where(*_of_domain(account_id, domain))
    if code is not None:
        query = query.where(guardrail_presets.c.code == code)
    if enabled is not None:
        query = query.where(guardrail_patterns.c.enabled == enabled)
    query = query.order_by(guardrail_patterns.c.updated_at.desc(), guardrail_presets.c.code, guardrail_patterns.c.name)
    return list(connection.execute(query).all())


def pattern_by_id(connection: Connection, account_id: uuid.UUID, domain: str, pattern_id: uuid.UUID) -> Any | None:
    return connection.execute(PATTERNS.where(*_of_domain(account_id, domain), guardrail_patterns.c.id == pattern_id)).first()


def preset_codes(connection: Connection, account_id: uuid.UUID, domain: str, preset: str | None) -> dict[uuid.UUID, str]:
    """Preset id → code for the domain's presets, or for the one `preset` names (id or code)."""
    query = sa.select(guardrail_presets.c.id, guardrail_presets.c.code).where(*_of_domain(account_id, domain))
    if preset:
        by_id = as_uuid(preset)
        query = query.where(guardrail_presets.c.id == by_id if by_id else guardrail_presets.c.code == preset)
    return {row.id: row.code for row in connection.execute(query)}


def assignments_of(connection: Connection, preset_ids: list[uuid.UUID]) -> list[Any]:
    """The scopes the presets' `assign` lists name."""
    return list(connection.execute(sa.select(guardrail_assignments).where(guardrail_assignments.c.preset_id.in_(preset_ids))).all())


def agents_naming(connection: Connection, preset_ids: list[uuid.UUID]) -> list[Any]:
    """The agents whose `guardrails` name the presets: the link's id, preset, time and the agent's name."""
    return list(connection.execute(
        sa.select(agent_guardrails.c.id, agent_guardrails.c.preset_id, agent_guardrails.c.created_at, agents.c.name)
        .join(agents, agent_guardrails.c.agent_id == agents.c.id)
        .where(agent_guardrails.c.preset_id.in_(preset_ids))
    ).all())
