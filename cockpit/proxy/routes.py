"""`POST /v1/chat/completions` and `GET /v1/models`, OpenAI-compatible.

A call goes: caller (virtual key or Zitadel token) → model in the catalog and allowed for the
caller (403 naming it) → guardrails on the messages (block: 400 naming preset and pattern) →
reserve the maximum cost on every level of the budget chain (429 naming the level) → litellm
→ settle the real cost → ledger row. Streams pass through chunk by chunk as server-sent events;
usage is always asked of the upstream (so the charge is exact) and passed on only when the
client asked for it.
"""

from __future__ import annotations

import json
import logging
import uuid
from decimal import Decimal
from typing import Any, AsyncIterator

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from cockpit.proxy.budget import attribution, cached_cycle, cycle_of, limits_for, seed_from_ledger
from cockpit.proxy.errors import ProxyError, upstream_error
from cockpit.proxy.guard import Hit, message_texts, screen_for
from cockpit.proxy.llm import complete
from cockpit.proxy.service import Caller, Proxy, allowed_for, caller_of, credit_factor, ledger_row, max_output_tokens, now, prompt_estimate
from cockpit.server.context import EMPTY, SCOPE_KEY
from cockpit.server.snapshots import AccountSnapshot, account_snapshot

log = logging.getLogger(__name__)
router = APIRouter(tags=["proxy"])

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
    }},
}
ERRORS = {
    status: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, text in (
        (400, "Invalid request, or blocked by a guardrail"),
        (401, "No valid credential"),
        (403, "Model not allowed for the caller, or no user behind the credential"),
        (404, "No such model"),
        (429, "Credit budget exhausted, or the upstream is rate limiting"),
        (502, "The upstream provider failed"),
        (503, "Budgets cannot be checked"),
        (504, "The upstream provider did not answer in time"),
    )
}
HANDLED = {"model", "messages", "stream", "stream_options"}
OPENAI_PARAMETERS = frozenset({
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "max_tokens", "max_completion_tokens", "n",
    "presence_penalty", "response_format", "seed", "stop", "temperature", "top_p", "tools", "tool_choice",
    "parallel_tool_calls", "user", "functions", "function_call", "modalities", "audio", "prediction",
    "reasoning_effort", "service_tier", "web_search_options", "verbosity",
})
"""Chat Completions parameters passed to the upstream. Anything else is refused: litellm would
take `api_base`, `api_key` or `metadata` from the body and send the gateway's key elsewhere."""


def proxy_of(request: Request) -> Proxy:
    proxy = getattr(request.app.state, "proxy", None)
    if proxy is None:
        raise ProxyError(503, "The proxy is not running in this server.", "proxy_unavailable")
    return proxy


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ProxyError(400, "The request body is not valid JSON.", "invalid_json") from None
    if not isinstance(body, dict):
        raise ProxyError(400, "The request body must be a JSON object.", "invalid_json")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ProxyError(400, "`model` is required: the name of a model of the catalog.", "missing_model", param="model")
    unknown = sorted(key for key in body if key not in HANDLED and key not in OPENAI_PARAMETERS)
    if unknown:
        raise ProxyError(400, f"Unrecognized request argument supplied: {', '.join(unknown)}.", "unknown_parameter", param=unknown[0])
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ProxyError(400, "`messages` is required: a non-empty list of chat messages.", "invalid_messages", param="messages")
    return body


def _blocked(hits: tuple[Hit, ...], where: str) -> ProxyError | None:
    for hit in hits:
        if hit.action == "block":
            what = "The request" if where == "request" else "The model's answer"
            return ProxyError(
                400,
                f"{what} was blocked by guardrail preset `{hit.preset}`, pattern `{hit.pattern}`. Remove the content it matches and try again.",
                "guardrail_blocked",
            )
    return None


@router.post(
    "/v1/chat/completions",
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    "model": {"type": "string"},
                    "messages": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                    "stream": {"type": "boolean"},
                    "max_tokens": {"type": "integer", "minimum": 1},
                },
                "additionalProperties": True,
            }}},
        }
    },
)
async def chat_completions(request: Request) -> Response:
    """OpenAI Chat Completions through the caller's model access, budget and guardrails."""
    try:
        return await _chat(request)
    except ProxyError as exc:
        return exc.response()
    except SQLAlchemyError as exc:
        log.error("proxy: database error: %s", type(exc).__name__)
        return ProxyError(503, "The gateway's database is unavailable; retry later.", "database_unavailable").response()


async def _chat(request: Request) -> Response:
    proxy = proxy_of(request)
    caller = caller_of(request.scope.get(SCOPE_KEY, EMPTY), request.headers.get("x-cockpit-domain"))
    body = await _body(request)
    snapshot = await account_snapshot(request, caller.account_id)
    catalog = await proxy.catalog_for(snapshot)
    name = body["model"]
    model = catalog.models.get(name)
    if model is None:
        raise ProxyError(404, f"The model `{name}` does not exist.", "model_not_found", param="model")
    if name not in allowed_for(snapshot, caller):
        raise ProxyError(403, f"Model `{name}` is not allowed for {caller.user} in {caller.domain}.", "model_not_allowed", param="model")

    messages = body["messages"]
    texts = message_texts(messages)
    screen = screen_for(snapshot, caller.domain, caller.user, caller.agent)
    hits = screen.scan(texts)
    blocked = _blocked(hits, "request")
    if blocked is not None:
        log.info("request of %s blocked by guardrail %s/%s", caller.user, blocked.code, hits[0].pattern)
        raise blocked

    started = now()
    cycle = cached_cycle(snapshot, started) or await run_in_threadpool(cycle_of, proxy.engine, snapshot, started)
    limits = limits_for(snapshot, caller.domain, caller.user, cycle)
    factor = credit_factor(snapshot)
    ceiling = model.cost(prompt_estimate(texts, len(messages)), max_output_tokens(body, model.max_output_tokens)) * factor
    reservation = await proxy.reserve(caller.account_id, cycle.window, limits, ceiling, seed_from_ledger(proxy.engine, snapshot, cycle.window))

    params = {key: value for key, value in body.items() if key not in HANDLED}
    want_usage = bool((body.get("stream_options") or {}).get("include_usage")) if isinstance(body.get("stream_options"), dict) else False
    call = Call(proxy, caller, snapshot, name, model, reservation, started, hits, factor)
    try:
        if body.get("stream"):
            stream = await complete(catalog.deployments[name], messages=messages, stream=True, stream_options={"include_usage": True}, **params)
        else:
            response = await complete(catalog.deployments[name], messages=messages, **params)
    except Exception as exc:
        await call.finish(Decimal(0), {"error": type(exc).__name__})
        raise upstream_error(exc, name) from None
    if body.get("stream"):
        return StreamingResponse(call.relay(stream, want_usage), media_type="text/event-stream", headers={"x-request-id": call.request_id, "cache-control": "no-cache"})
    return await call.answer(response, screen)


class Call:
    """One upstream call after it was allowed: charge it, log it, shape the answer."""

    def __init__(self, proxy: Proxy, caller: Caller, snapshot: AccountSnapshot, name: str, model: Any, reservation: Any, started: Any, hits: tuple[Hit, ...], factor: Decimal) -> None:
        self.proxy, self.caller, self.snapshot, self.name, self.model = proxy, caller, snapshot, name, model
        self.reservation, self.started, self.hits, self.factor = reservation, started, hits, factor
        self.request_id = f"ck-{uuid.uuid4().hex}"

    async def finish(self, raw_cost: Decimal, metadata: dict[str, Any]) -> None:
        """Settle the hold with the real charge and queue the ledger row (cost 0 rows are
        written too when a guardrail hit needs recording)."""
        row = ledger_row(
            caller=self.caller, attribution=attribution(self.snapshot, self.caller.domain, self.caller.user),
            model=self.name, raw_cost=raw_cost, factor=self.factor, started=self.started, request_id=self.request_id,
            guardrail_code=next((h for h in self.hits if h.action == "block"), self.hits[0]).preset if self.hits else None,
            metadata={**metadata, **({"guardrails": [hit.as_dict() for hit in self.hits]} if self.hits else {})},
        )
        await self.proxy.settle(self.reservation, row["credits"])
        if raw_cost > 0 or self.hits or "error" not in metadata:
            self.proxy.record(row)

    async def answer(self, response: Any, screen: Any) -> Response:
        usage = getattr(response, "usage", None)
        raw_cost = _cost(response, usage, self.model)
        answer_texts = [c.message.content for c in response.choices if getattr(c, "message", None) is not None and isinstance(c.message.content, str)]
        hits = screen.scan(answer_texts, "response")
        self.hits += hits
        await self.finish(raw_cost, _usage_metadata(usage, stream=False))
        blocked = _blocked(hits, "response")
        if blocked is not None:
            return blocked.response()
        response.model = self.name
        return Response(response.model_dump_json(exclude_none=True), media_type="application/json", headers={"x-request-id": self.request_id})

    async def relay(self, stream: Any, want_usage: bool) -> AsyncIterator[bytes]:
        usage, chunks, failure = None, 0, None
        try:
            async for chunk in stream:
                chunk_usage = getattr(chunk, "usage", None)
                if chunk_usage is not None and not chunk.choices:
                    usage = chunk_usage
                    if not want_usage:
                        continue
                    chunk.model = self.name
                    data = chunk.model_dump(exclude_none=True)
                    data.get("usage", {}).pop("cost", None)
                    yield b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
                    continue
                chunks += 1
                chunk.model = self.name
                yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
        except Exception as exc:
            failure = exc
            error = ProxyError(502, f"The upstream provider of model `{self.name}` broke off the answer after {chunks} chunk(s); what arrived is charged. Retry the request.", "upstream_stream_broken")
            log.warning("stream of %s from %s broke after %d chunk(s): %s", self.name, self.caller.user, chunks, type(exc).__name__)
            yield b"data: " + json.dumps(error.body()).encode() + b"\n\n"
        finally:
            with anyio.CancelScope(shield=True):
                closing = getattr(stream, "aclose", None)
                if closing is not None:
                    try:
                        await closing()  # a client that went away frees the upstream connection
                    except Exception:
                        pass
                if usage is not None:
                    raw_cost = _cost(None, usage, self.model)
                    metadata = _usage_metadata(usage, stream=True)
                else:
                    # Broken or abandoned stream: charge what was seen, the prompt at its bound.
                    raw_cost = self.model.cost(0, chunks)
                    metadata = {"stream": True, "partial": True, "chunks": chunks, "failure": type(failure).__name__ if failure else "client went away"}
                await self.finish(raw_cost, metadata)


def _cost(response: Any, usage: Any, model: Any) -> Decimal:
    """litellm's cost of the call (per-deployment prices), or the same computed from usage."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if cost is None and usage is not None:
        cost = getattr(usage, "cost", None)
    if cost is not None:
        return Decimal(str(cost))
    if usage is None:
        return Decimal(0)
    return model.cost(int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0))


def _usage_metadata(usage: Any, *, stream: bool) -> dict[str, Any]:
    if usage is None:
        return {"stream": stream}
    return {
        "stream": stream,
        "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
    }


@router.get("/v1/models", responses={k: v for k, v in ERRORS.items() if k in (401, 403)})
async def list_models(request: Request) -> Response:
    """The models the caller may use, in OpenAI's list shape."""
    try:
        proxy = proxy_of(request)
        caller = caller_of(request.scope.get(SCOPE_KEY, EMPTY), request.headers.get("x-cockpit-domain"))
        snapshot = await account_snapshot(request, caller.account_id)
        catalog = await proxy.catalog_for(snapshot)
    except ProxyError as exc:
        return exc.response()
    allowed = allowed_for(snapshot, caller)
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "cockpit"} for name in sorted(catalog.models) if name in allowed]
    return JSONResponse({"object": "list", "data": data})
