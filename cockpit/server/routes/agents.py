"""Copilot agents with their mandatory guardrails and their grants.

An agent is named in the path by its id or its name. Grants name scopes in the copilot
directory; responses give the old `scope_id` (row id) beside the natural key.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.engine import Connection

from cockpit.runtime.snapshots import AccountSnapshot
from cockpit.server.deps import connection
from cockpit.server.reads import Page, domain_admin, item, list_snapshot, no_nul, page, paged, paged_rows, refusals, scopes_in
from cockpit.server.wire import resource_json
from cockpit.store.queries.agents import agent_by_ref, agents_page, mandatory_presets
from cockpit.store.queries.grants import scope_grants_of

router = APIRouter(tags=["agents"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))
copilot_admin = domain_admin("copilot")


def agent_row(conn: Connection, account_id: uuid.UUID, ref: str, missing: str) -> Any:
    row = agent_by_ref(conn, account_id, ref)
    if row is None:
        raise HTTPException(404, missing)
    return row


def grants_of(conn: Connection, snapshot: AccountSnapshot, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each agent's grants, newest first, with the scopes' row ids."""
    scopes = scopes_in(snapshot, "copilot")
    account = {"account_id": str(snapshot.account_id)}
    return {
        agent: [resource_json("agent_grant", g, scopes, account) for g in grants]
        for agent, grants in scope_grants_of(conn, "agent_grant", agent_ids).items()
    }


def agents_json(conn: Connection, snapshot: AccountSnapshot | None, rows: list[Any]) -> list[dict[str, Any]]:
    """Agents with their mandatory presets, and their grants when a snapshot is given."""
    ids = [row.id for row in rows]
    presets = mandatory_presets(conn, ids)
    grants = grants_of(conn, snapshot, ids) if snapshot is not None else {}
    result = []
    for row in rows:
        fields = resource_json("agent", row, values={
            "mandatory_guardrail_preset_ids": [str(p.id) for p in presets[row.id]],
            "mandatory_guardrail_codes": [p.code for p in presets[row.id]],
        })
        if snapshot is not None:
            fields["grants"] = grants[row.id]
        result.append(fields)
    return result


@router.get("/v1/copilot/agents")
def list_agents(
    request: Request,
    include_grants: bool = False,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    rows = agents_page(conn, account_id, at)
    snapshot = list_snapshot(request, conn, account_id) if include_grants else None
    return paged_rows(rows, lambda found: agents_json(conn, snapshot, found))


@router.get("/v1/copilot/agents/{agent}", responses=refusals(404))
def get_agent(agent: str, request: Request, account_id: uuid.UUID = Depends(copilot_admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
    row = agent_row(conn, account_id, agent, "Agent not found")
    return item(agents_json(conn, list_snapshot(request, conn, account_id), [row])[0])


@router.get("/v1/copilot/agents/{agent}/grants", responses=refusals(404))
def list_agent_grants(
    agent: str,
    request: Request,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(copilot_admin),
    conn: Connection = Depends(connection),
) -> dict[str, Any]:
    row = agent_row(conn, account_id, agent, "Copilot agent not found")
    return paged(grants_of(conn, list_snapshot(request, conn, account_id), [row.id])[row.id], at)
