"""Guardrails: presets, assignments, patterns and the effective view.

The old system had copilot guardrails only, under `/v1/copilot/guardrails`. A preset here says
its domain (`domain: console` presets resolve their scopes in the console directory and apply
to console traffic), so the same endpoints also exist under `/v1/console/guardrails`, each
showing the presets of its own domain behind its own admin guard.

Assignments come from two places in the config: a preset's `assign` list and an agent's
`guardrails` (the old system stored the latter as `agent` assignments too); both are listed,
`via` telling which. Effective guardrails are the union over agent → user → the user's teams →
their orgs → account, one entry per preset with every level that brought it
(`cockpit.policy.guardrails`), membership expanded from the directory.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from cockpit.policy.guardrails import effective_guardrails
from cockpit.runtime.scopes import scope_key
from cockpit.runtime.snapshots import account_snapshot
from cockpit.server.deps import connection
from cockpit.server.reads import (
    Page, check_scope_type, item, json_body, list_snapshot, no_nul, page, paged, refusals, route_domain, route_domain_admin,
)
from cockpit.server.subjects import graph_for, parse_scope, resolution_order, source_fields, subject, subject_fields
from cockpit.server.wire import plain, resource_json
from cockpit.store.queries import guardrails as store
from cockpit.store.queries.filters import as_uuid

router = APIRouter(tags=["guardrails"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))

SCOPE_TYPES = {"copilot": ("account", "org", "team", "user", "agent"), "console": ("account", "org", "team", "user")}
"""The scopes a domain's presets are assigned to: agents are copilot's."""


def list_presets(
    at: Page = Depends(page), account_id: uuid.UUID = Depends(route_domain_admin), conn: Connection = Depends(connection),
    domain: str = Depends(route_domain),
) -> dict[str, Any]:
    rows = store.presets_of(conn, account_id, domain)
    shown = at.slice(rows)
    patterns = store.patterns_of_presets(conn, [r.id for r in shown])
    items = [
        {**resource_json("guardrail_preset", r), "patterns": [resource_json("guardrail_pattern", p) for p in patterns[r.id]]}
        for r in shown
    ]
    return {"items": items, "total": len(rows)}


def list_assignments(
    request: Request,
    scope_type: str | None = None,
    scope_id: str | None = None,
    preset_id: str | None = None,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(route_domain_admin),
    conn: Connection = Depends(connection),
    domain: str = Depends(route_domain),
) -> dict[str, Any]:
    """`scope_id` takes a row id or a natural key; `preset_id` an id or a preset code."""
    snapshot = list_snapshot(request, conn, account_id)
    wanted_key = None
    if scope_type:
        if scope_id is None:
            raise HTTPException(400, "scope_id is required when scope_type is provided")
        check_scope_type(scope_type, SCOPE_TYPES[domain])
        wanted_key = scope_key(snapshot, domain, scope_type, scope_id)
    codes = store.preset_codes(conn, account_id, domain, preset_id)
    if preset_id and not codes:
        raise HTTPException(404, "Guardrail preset not found")
    found: list[tuple[Any, str, str, str, uuid.UUID, str]] = []
    for row in store.assignments_of(conn, list(codes)):
        found.append((row.created_at, row.scope_type, row.scope_key, "preset.assign", row.preset_id, str(row.id)))
    if domain == "copilot":
        for row in store.agents_naming(conn, list(codes)):
            found.append((row.created_at, "agent", row.name, "agent.guardrails", row.preset_id, str(row.id)))
    if scope_type:
        found = [f for f in found if f[1] == scope_type and f[2] == wanted_key]
    found.sort(key=lambda f: (codes[f[4]], f[1], f[2], f[3]))
    found.sort(key=lambda f: f[0], reverse=True)
    items = [
        {
            "id": row_id,
            "account_id": str(account_id),
            "preset_id": str(preset),
            "preset_code": codes[preset],
            **snapshot.scope_fields(domain, (scope, key)),
            "via": via,
            "created_at": plain(created),
        }
        for created, scope, key, via, preset, row_id in at.slice(found)
    ]
    return {"items": items, "total": len(found)}


def list_patterns(
    guard_type: str | None = None,
    enabled: bool | None = None,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(route_domain_admin),
    conn: Connection = Depends(connection),
    domain: str = Depends(route_domain),
) -> dict[str, Any]:
    """`guard_type` is a preset code (the old system's pii, toxic, jailbreak were presets)."""
    rows = store.patterns_of(conn, account_id, domain, guard_type.strip() if guard_type else None, enabled)
    return paged([resource_json("guardrail_pattern", r) for r in rows], at)


def get_pattern(
    pattern_id: str, account_id: uuid.UUID = Depends(route_domain_admin), conn: Connection = Depends(connection),
    domain: str = Depends(route_domain),
) -> dict[str, Any]:
    by_id = as_uuid(pattern_id)
    row = store.pattern_by_id(conn, account_id, domain, by_id) if by_id else None
    if row is None:
        raise HTTPException(404, "Pattern not found")
    return item(resource_json("guardrail_pattern", row))


async def effective(
    request: Request,
    user_id: str | None = None,
    email: str | None = None,
    team_id: str | None = None,
    org_id: str | None = None,
    agent_id: str | None = None,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(route_domain_admin),
    domain: str = Depends(route_domain),
) -> JSONResponse:
    """The presets that apply, one per preset, with every level that brought it and why.
    Name a user by id or e-mail (their teams and orgs come from the directory), or a team
    or org; `agent_id` (copilot) adds the agent's own guardrails and assignments."""
    if agent_id and domain != "copilot":
        raise HTTPException(400, "agent_id applies to copilot guardrails only")
    snapshot = await account_snapshot(request, account_id)
    who = subject(snapshot, domain, user_id=user_id, email=email, team_id=team_id, org_id=org_id, agent_id=agent_id)
    graph = graph_for(snapshot, who)
    items = []
    for found in effective_guardrails(graph, who.name, who.agent, domain):
        levels = [snapshot.scope_fields(domain, parse_scope(level)) for level in found.levels]
        preset = found.preset
        items.append(
            {
                "preset_id": snapshot.row_id("guardrail_preset", (found.code,)),
                "code": found.code,
                "name": found.name,
                "domain": found.domain,
                "description": preset.fields.get("description") if preset else None,
                "preset_json": (preset.fields.get("config") if preset else None) or {},
                "scope_type": levels[0]["scope_type"],
                "scope_id": levels[0]["scope_id"],
                "source_scope_type": levels[0]["scope_type"],
                "source_scope_id": levels[0]["scope_id"],
                "levels": levels,
                "sources": [source_fields(snapshot, domain, s) for s in found.sources],
                "why": found.why,
            }
        )
    return json_body({
        **subject_fields(snapshot, who),
        **paged(items, at),
        "resolution_order": resolution_order(snapshot, graph, who),
    })


router.add_api_route("/v1/console/guardrails/presets", list_presets, methods=["GET"], name="console_guardrail_presets")
router.add_api_route("/v1/console/guardrails/assignments", list_assignments, methods=["GET"], name="console_guardrail_assignments", responses=refusals(400, 404))
router.add_api_route("/v1/console/guardrails/patterns", list_patterns, methods=["GET"], name="console_guardrail_patterns")
router.add_api_route("/v1/console/guardrails/patterns/{pattern_id}", get_pattern, methods=["GET"], name="console_guardrail_pattern", responses=refusals(404))
router.add_api_route("/v1/console/guardrails/effective", effective, methods=["GET"], name="console_guardrails_effective", responses=refusals(400, 404))
router.add_api_route("/v1/copilot/guardrails/presets", list_presets, methods=["GET"], name="copilot_guardrail_presets")
router.add_api_route("/v1/copilot/guardrails/assignments", list_assignments, methods=["GET"], name="copilot_guardrail_assignments", responses=refusals(400, 404))
router.add_api_route("/v1/copilot/guardrails/patterns", list_patterns, methods=["GET"], name="copilot_guardrail_patterns")
router.add_api_route("/v1/copilot/guardrails/patterns/{pattern_id}", get_pattern, methods=["GET"], name="copilot_guardrail_pattern", responses=refusals(404))
router.add_api_route("/v1/copilot/guardrails/effective", effective, methods=["GET"], name="copilot_guardrails_effective", responses=refusals(400, 404))
