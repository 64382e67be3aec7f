"""Copilot agents (seed-behaviour §7) with their mandatory guardrails and their grants.

An agent is named in the path by its id or its name. Grants name scopes in the copilot
directory; responses give the old `scope_id` (row id) beside the natural key.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.engine import Connection

from cockpit.server.deps import connection
from cockpit.server.reads import Page, as_uuid, domain_admin, item, page, paged, paged_query, plain, no_nul, refusals, scope_grants
from cockpit.store.tables import agent_grants, agent_guardrails, agents, guardrail_presets

router = APIRouter(prefix="/v1/copilot/agents", tags=["agents"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))
copilot_admin = domain_admin("copilot")


def agent_row(conn: Connection, account_id: uuid.UUID, name_or_id: str, missing: str) -> Any:
    by_id = as_uuid(name_or_id)
    query = sa.select(agents).where(agents.c.account_id == account_id)
    query = query.where(agents.c.id == by_id if by_id else agents.c.name == name_or_id)
    row = conn.execute(query).first()
    if row is None:
        raise HTTPException(404, missing)
    return row


def grants_of(conn: Connection, account_id: uuid.UUID, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each agent's grants, newest first, with the scopes' row ids."""
    return scope_grants(conn, account_id, agent_grants, "agent_id", agent_ids, "agent_id")


def agents_json(conn: Connection, account_id: uuid.UUID, rows: list[Any], include_grants: bool) -> list[dict[str, Any]]:
    ids = [row.id for row in rows]
    presets: dict[uuid.UUID, list[Any]] = {i: [] for i in ids}
    if ids:
        for link in conn.execute(
            sa.select(agent_guardrails.c.agent_id, guardrail_presets.c.id, guardrail_presets.c.code)
            .join(guardrail_presets, agent_guardrails.c.preset_id == guardrail_presets.c.id)
            .where(agent_guardrails.c.agent_id.in_(ids))
            .order_by(agent_guardrails.c.created_at, guardrail_presets.c.code)
        ):
            presets[link.agent_id].append(link)
    grants = grants_of(conn, account_id, ids) if include_grants else {}
    result = []
    for row in rows:
        fields = {
            "id": str(row.id),
            "account_id": str(row.account_id),
            "name": row.name,
            "description": row.description,
            "definition_json": row.definition or {},
            "mandatory_guardrail_preset_ids": [str(p.id) for p in presets[row.id]],
            "mandatory_guardrail_codes": [p.code for p in presets[row.id]],
            "created_at": plain(row.created_at),
            "updated_at": plain(row.updated_at),
        }
        if include_grants:
            fields["grants"] = grants[row.id]
        result.append(fields)
    return result


@router.get("")
def list_agents(
    include_grants: bool = False,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    query = sa.select(agents).where(agents.c.account_id == account_id).order_by(agents.c.created_at.desc(), agents.c.name)
    return paged_query(conn, query, at, lambda rows: agents_json(conn, account_id, rows, include_grants))


@router.get("/{agent}", responses=refusals(404))
def get_agent(agent: str, account_id: uuid.UUID = Depends(copilot_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    row = agent_row(conn, account_id, agent, "Agent not found")
    return item(agents_json(conn, account_id, [row], include_grants=True)[0])


@router.get("/{agent}/grants", responses=refusals(404))
def list_agent_grants(
    agent: str,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    row = agent_row(conn, account_id, agent, "Copilot agent not found")
    return paged(grants_of(conn, account_id, [row.id])[row.id], at)
