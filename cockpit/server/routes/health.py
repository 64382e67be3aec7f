"""Probes and metrics for whoever runs the server: `/health/liveliness` (the process answers),
`/health/readiness` (it can serve: see `cockpit.server.readiness`) and `/metrics` (Prometheus
text, for the master key or `COCKPIT_METRICS_TOKEN` only). `/health` stays in `core`.

The probe paths never look at credentials (`tenant.PUBLIC_PATHS`); they say nothing an
anonymous caller should not know.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from cockpit.observe.metrics import CONTENT_TYPE, exposition
from cockpit.server.metrics import BudgetCollector, context_of, scrape_refusal
from cockpit.server.readiness import check_readiness, redis_client_for
from cockpit.server.reads import Refusal
from cockpit.server.tenant import request_token

router = APIRouter(tags=["core"])


class ReadinessAnswer(BaseModel):
    status: str
    """ready, or not ready."""
    not_ready: list[str]
    """The conditions not met: database, schema, catalog, redis."""
    checks: dict[str, str]
    """Each condition: "ok", or why not."""


READINESS = {
    200: {"model": ReadinessAnswer, "description": "Ready: every check is ok."},
    503: {"model": ReadinessAnswer, "description": "Not ready; `not_ready` names the conditions not met and `checks` says why."},
}
METRICS = {
    200: {"description": "Prometheus text format (version 0.0.4).", "content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}},
    401: {"model": Refusal, "description": "No credential."},
    403: {"model": Refusal, "description": "A credential other than the master key or COCKPIT_METRICS_TOKEN."},
}


@router.get("/health/liveliness")
async def liveliness() -> dict[str, str]:
    """The process is up and its event loop answers (a liveness probe: restart when not)."""
    return {"status": "alive"}


@router.get("/health/readiness", response_model=ReadinessAnswer, responses=READINESS)
async def readiness(request: Request) -> JSONResponse:
    """200 when the database answers at the current schema, the model catalog is loaded and
    Redis answers (when configured); 503 naming what is not, until then."""
    state = request.app.state
    if not hasattr(state, "readiness_redis"):
        state.readiness_redis = redis_client_for(state.environ)
    found = await run_in_threadpool(check_readiness, state.engine, getattr(state, "proxy", None), state.environ, state.readiness_redis)
    return JSONResponse(found.as_dict(), status_code=200 if found.ready else 503)


@router.get("/metrics", response_class=Response, responses=METRICS)
async def metrics(request: Request) -> Response:
    """Prometheus text format: request, gateway, ledger and budget families (README,
    *Deploying*)."""
    state = request.app.state
    token = request_token(dict(request.scope.get("headers") or ()), "POST")  # never the cookie
    refused = scrape_refusal(context_of(request.scope), token, state.environ)
    if refused is not None:
        status, message = refused
        return JSONResponse({"detail": message}, status_code=status, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
    collector = BudgetCollector(state.engine, state.box)
    body = await run_in_threadpool(exposition, (collector,))
    return Response(body, media_type=CONTENT_TYPE)
