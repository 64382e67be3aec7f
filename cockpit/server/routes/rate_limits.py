"""Effective rate limits: every limit a subject's calls must pass, at one path per domain.

Decided by `cockpit.policy.rate_limits` over the account's graph, as the gateway counts them:
every limit on the chain (agent, user, teams, orgs, account) applies; `per_user` limits count
each user separately; a limit with a model counts only that model's calls.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from cockpit.policy.rate_limits import effective_rate_limits
from cockpit.runtime.snapshots import account_snapshot
from cockpit.server.reads import (
    Page,
    json_body,
    no_nul,
    page,
    paged,
    refusals,
    route_domain,
    route_domain_admin,
)
from cockpit.server.subjects import (
    graph_for,
    resolution_order,
    source_fields,
    subject,
    subject_fields,
)

router = APIRouter(tags=["rate limits"], dependencies=[Depends(no_nul)], responses=refusals(400, 403))


async def effective(
    request: Request,
    model_name: str | None = None,
    user_id: str | None = None,
    email: str | None = None,
    team_id: str | None = None,
    org_id: str | None = None,
    agent_id: str | None = None,
    at: Page = Depends(page),
    account_id: uuid.UUID = Depends(route_domain_admin),
    domain: str = Depends(route_domain),
) -> JSONResponse:
    """The limits that apply, most specific scope first, each with its why and source. Name a
    user by id or e-mail (teams and orgs from the directory), or a team or org; `agent_id`
    (copilot) adds the agent's limits; `model_name` keeps the limits a call to that model
    counts on (without it, every limit on the chain, whichever model)."""
    if agent_id and domain != "copilot":
        raise HTTPException(400, "agent_id applies to copilot rate limits only")
    snapshot = await account_snapshot(request, account_id)
    who = subject(snapshot, domain, user_id=user_id, email=email, team_id=team_id, org_id=org_id, agent_id=agent_id)
    graph = graph_for(snapshot, who)
    items: list[dict[str, Any]] = []
    for limit in effective_rate_limits(graph, domain, who.name, who.agent, model_name):
        items.append({
            **snapshot.scope_fields(domain if limit.scope.type != "agent" else "copilot", limit.scope),
            "per_user": limit.per_user,
            "model_name": limit.model,
            "rpm": limit.rpm,
            "tpm": limit.tpm,
            "counter": limit.key,
            "why": limit.why,
            "sources": [source_fields(snapshot, domain, limit.source)],
        })
    return json_body({
        **subject_fields(snapshot, who),
        "domain": domain,
        **paged(items, at),
        "resolution_order": resolution_order(snapshot, graph, who),
    })


router.add_api_route("/v1/console/rate-limits/effective", effective, methods=["GET"], name="console_rate_limits_effective", responses=refusals(400, 404))
router.add_api_route("/v1/copilot/rate-limits/effective", effective, methods=["GET"], name="copilot_rate_limits_effective", responses=refusals(400, 404))
