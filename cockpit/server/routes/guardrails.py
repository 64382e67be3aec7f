"""Guardrails (seed-behaviour §9): presets, assignments, patterns and the effective view.

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

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from cockpit.policy.guardrails import effective_guardrails
from cockpit.server.deps import connection
from cockpit.server.reads import (
    DOMAINS, Page, ScopeIds, as_uuid, check_scope_type, domain_admin, item, json_body, page, paged, plain, no_nul, refusals, scope_key_of,
)
from cockpit.runtime.snapshots import account_snapshot
from cockpit.server.subjects import graph_for, parse_scope, resolution_order, source_fields, subject, subject_fields
from cockpit.store.tables import agent_guardrails, agents, guardrail_assignments, guardrail_patterns, guardrail_presets

router = APIRouter(tags=["guardrails"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))


def preset_fields(row: Any, patterns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    fields = {
        "id": str(row.id),
        "account_id": str(row.account_id),
        "code": row.code,
        "name": row.name,
        "description": row.description,
        "domain": row.domain,
        "preset_json": row.config or {},
        "created_at": plain(row.created_at),
        "updated_at": plain(row.updated_at),
    }
    if patterns is not None:
        fields["patterns"] = patterns
    return fields


def pattern_fields(row: Any) -> dict[str, Any]:
    """A pattern in the old shape (`pattern_name`, `pattern_regex`, …); `guard_type` is the code
    of its preset."""
    return {
        "id": str(row.id),
        "account_id": str(row.account_id),
        "guard_type": row.code,
        "preset_id": str(row.preset_id),
        "pattern_name": row.name,
        "pattern_regex": row.regex,
        "pattern_type": row.type,
        "action": row.action,
        "enabled": bool(row.enabled),
        "is_system": False,
        "created_at": plain(row.created_at),
        "updated_at": plain(row.updated_at),
    }


PATTERNS = (
    sa.select(guardrail_patterns, guardrail_presets.c.code, guardrail_presets.c.account_id)
    .join(guardrail_presets, guardrail_patterns.c.preset_id == guardrail_presets.c.id)
)


def _add_routes(domain: str) -> None:
    admin = domain_admin(domain)
    base = f"/v1/{domain}/guardrails"
    scope_types = ("account", "org", "team", "user", "agent") if domain == "copilot" else ("account", "org", "team", "user")

    def presets_query(account_id: uuid.UUID) -> sa.Select:
        return sa.select(guardrail_presets).where(guardrail_presets.c.account_id == account_id, guardrail_presets.c.domain == domain)

    def patterns_query(account_id: uuid.UUID) -> sa.Select:
        return PATTERNS.where(guardrail_presets.c.account_id == account_id, guardrail_presets.c.domain == domain)

    @router.get(f"{base}/presets", name=f"{domain}_guardrail_presets")
    def list_presets(
        at: Page = Depends(page), account_id: uuid.UUID = Depends(admin), conn: Connection = Depends(connection)
    ) -> dict[str, Any]:
        rows = conn.execute(presets_query(account_id).order_by(guardrail_presets.c.created_at.desc(), guardrail_presets.c.code)).all()
        shown = at.slice(rows)
        patterns: dict[uuid.UUID, list[dict[str, Any]]] = {r.id: [] for r in shown}
        if shown:
            for row in conn.execute(PATTERNS.where(guardrail_patterns.c.preset_id.in_(list(patterns))).order_by(guardrail_patterns.c.name)):
                patterns[row.preset_id].append(pattern_fields(row))
        return {"items": [preset_fields(r, patterns[r.id]) for r in shown], "total": len(rows)}

    @router.get(f"{base}/assignments", name=f"{domain}_guardrail_assignments", responses=refusals(400, 404))
    def list_assignments(
        scope_type: str | None = None,
        scope_id: str | None = None,
        preset_id: str | None = None,
        at: Page = Depends(page),
        account_id: uuid.UUID = Depends(admin),
        conn: Connection = Depends(connection),
    ) -> dict[str, Any]:
        """`scope_id` takes a row id or a natural key; `preset_id` an id or a preset code."""
        wanted_key = None
        if scope_type:
            if scope_id is None:
                raise HTTPException(400, "scope_id is required when scope_type is provided")
            check_scope_type(scope_type, scope_types)
            wanted_key = scope_key_of(conn, account_id, domain, scope_type, scope_id)
        presets = presets_query(account_id).with_only_columns(guardrail_presets.c.id, guardrail_presets.c.code)
        if preset_id:
            by_id = as_uuid(preset_id)
            presets = presets.where(guardrail_presets.c.id == by_id if by_id else guardrail_presets.c.code == preset_id)
        codes = {row.id: row.code for row in conn.execute(presets)}
        if preset_id and not codes:
            raise HTTPException(404, "Guardrail preset not found")
        found: list[tuple[Any, str, str, str, uuid.UUID, str]] = []
        for row in conn.execute(sa.select(guardrail_assignments).where(guardrail_assignments.c.preset_id.in_(list(codes)))):
            found.append((row.created_at, row.scope_type, row.scope_key, "preset.assign", row.preset_id, str(row.id)))
        if domain == "copilot":
            for row in conn.execute(
                sa.select(agent_guardrails.c.id, agent_guardrails.c.preset_id, agent_guardrails.c.created_at, agents.c.name)
                .join(agents, agent_guardrails.c.agent_id == agents.c.id)
                .where(agent_guardrails.c.preset_id.in_(list(codes)))
            ):
                found.append((row.created_at, "agent", row.name, "agent.guardrails", row.preset_id, str(row.id)))
        if scope_type:
            found = [f for f in found if f[1] == scope_type and f[2] == wanted_key]
        found.sort(key=lambda f: (codes[f[4]], f[1], f[2], f[3]))
        found.sort(key=lambda f: f[0], reverse=True)
        shown = at.slice(found)
        scopes = ScopeIds(conn, account_id)
        for f in shown:
            scopes.want(domain, f[1], f[2])
        scopes.resolve()
        items = [
            {
                "id": row_id,
                "account_id": str(account_id),
                "preset_id": str(preset),
                "preset_code": codes[preset],
                **scopes.fields(domain, scope, key),
                "via": via,
                "created_at": plain(created),
            }
            for created, scope, key, via, preset, row_id in shown
        ]
        return {"items": items, "total": len(found)}

    @router.get(f"{base}/patterns", name=f"{domain}_guardrail_patterns")
    def list_patterns(
        guard_type: str | None = None,
        enabled: bool | None = None,
        at: Page = Depends(page),
        account_id: uuid.UUID = Depends(admin),
        conn: Connection = Depends(connection),
    ) -> dict[str, Any]:
        """`guard_type` is a preset code (the old system's pii, toxic, jailbreak were presets)."""
        query = patterns_query(account_id)
        if guard_type:
            query = query.where(guardrail_presets.c.code == guard_type.strip())
        if enabled is not None:
            query = query.where(guardrail_patterns.c.enabled == enabled)
        rows = conn.execute(query.order_by(guardrail_patterns.c.updated_at.desc(), guardrail_presets.c.code, guardrail_patterns.c.name)).all()
        return paged([pattern_fields(r) for r in rows], at)

    @router.get(f"{base}/patterns/{{pattern_id}}", name=f"{domain}_guardrail_pattern", responses=refusals(404))
    def get_pattern(pattern_id: str, account_id: uuid.UUID = Depends(admin), conn: Connection = Depends(connection)) -> dict[str, Any]:
        by_id = as_uuid(pattern_id)
        row = conn.execute(patterns_query(account_id).where(guardrail_patterns.c.id == by_id)).first() if by_id else None
        if row is None:
            raise HTTPException(404, "Pattern not found")
        return item(pattern_fields(row))

    @router.get(f"{base}/effective", name=f"{domain}_guardrails_effective", responses=refusals(400, 404))
    async def effective(
        request: Request,
        user_id: str | None = None,
        email: str | None = None,
        team_id: str | None = None,
        org_id: str | None = None,
        agent_id: str | None = None,
        at: Page = Depends(page),
        account_id: uuid.UUID = Depends(admin),
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


for _domain in DOMAINS:
    _add_routes(_domain)
