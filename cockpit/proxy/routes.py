"""The gateway's endpoints, OpenAI-compatible, all through one governed path (`serve`).

A call goes: caller (virtual key or Zitadel token) → model in the catalog and allowed for the
caller (403 naming it) → guardrails on the endpoint's input fields (block: 400 naming preset and
pattern) → reserve the maximum cost on every level of the budget chain (429 naming the level)
→ the upstream, directly or through litellm (`cockpit.proxy.upstream`) → screen the answer →
settle the real cost from the answer's usage at the model's prices → one ledger row that names
the endpoint. Streams pass through event by event as server-sent events; usage is always asked
of the upstream (so the charge is exact) and passed on only when the client asked for it. What
differs between endpoints is declared once in `cockpit.proxy.endpoints`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, AsyncIterator, Mapping

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from cockpit.budgets.counters import credits
from cockpit.budgets.rates import Admission
from cockpit.observe import metrics
from cockpit.observe.tracing import GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL, GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_OUTPUT_TOKENS, span
from cockpit.observe.tracing import enabled as tracing_enabled
from cockpit.budgets.usage import Spend, caller_spend, iso, scope_usage
from cockpit.proxy.bounds import MESSAGE_OVERHEAD_TOKENS
from cockpit.proxy.budget import attribution, cached_cycle, cycle_of, limits_for, seed_from_ledger
from cockpit.proxy.endpoints import CHAT_COMPLETIONS, COMPLETIONS_ENDPOINT, EMBEDDINGS_ENDPOINT, MESSAGES_ENDPOINT, RESPONSES_ENDPOINT, Endpoint, Usage
from cockpit.proxy.errors import ProxyError, deployment_secrets, upstream_error
from cockpit.proxy.guard import INLINE_LIMIT, Hit, StreamScreen, scan_texts, screen_for, texts_of
from cockpit.proxy.llm import count_tokens, translated_answer, translated_stream
from cockpit.proxy.rates import counters_for
from cockpit.proxy.routing import Attempt, Outcome, outcome_of
from cockpit.proxy.service import Caller, Proxy, allowed_for, caller_of, credential_of, credit_factor, ledger_row, now
from cockpit.runtime.context import EMPTY, SCOPE_KEY
from cockpit.runtime.snapshots import AccountSnapshot, account_snapshot

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
        (429, "A rate limit reached, credit budget exhausted, or the upstream is rate limiting"),
        (502, "The upstream provider failed"),
        (503, "Budgets cannot be checked"),
        (504, "The upstream provider did not answer in time"),
    )
}
def proxy_of(request: Request) -> Proxy:
    proxy = getattr(request.app.state, "proxy", None)
    if proxy is None:
        raise ProxyError(503, "The proxy is not running in this server.", "proxy_unavailable")
    return proxy


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


def _request_schema(required: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["model", required],
                "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}},
                "additionalProperties": True,
            }}},
        }
    }


@router.post("/v1/chat/completions", responses=ERRORS, openapi_extra=_request_schema("messages"))
@router.post("/chat/completions", responses=ERRORS, include_in_schema=False)
async def chat_completions(request: Request) -> Response:
    """OpenAI Chat Completions through the caller's model access, budget and guardrails."""
    return await serve(request, CHAT_COMPLETIONS)


@router.post("/v1/completions", responses=ERRORS, openapi_extra=_request_schema("prompt"))
@router.post("/completions", responses=ERRORS, include_in_schema=False)
async def completions(request: Request) -> Response:
    """OpenAI's legacy Completions, governed as chat completions are."""
    return await serve(request, COMPLETIONS_ENDPOINT)


@router.post("/v1/embeddings", responses=ERRORS, openapi_extra=_request_schema("input"))
@router.post("/embeddings", responses=ERRORS, include_in_schema=False)
async def embeddings(request: Request) -> Response:
    """OpenAI Embeddings: screened input, input-only budget bound, charged by its usage."""
    return await serve(request, EMBEDDINGS_ENDPOINT)


@router.post("/v1/responses", responses=ERRORS, openapi_extra=_request_schema("input"))
@router.post("/responses", responses=ERRORS, include_in_schema=False)
async def responses(request: Request) -> Response:
    """OpenAI's Responses API: screened input and output, bounded by `max_output_tokens`, charged
    from the usage of `response.completed`."""
    return await serve(request, RESPONSES_ENDPOINT)


@router.post("/v1/messages", responses=ERRORS, openapi_extra=_request_schema("messages"))
@router.post("/messages", responses=ERRORS, include_in_schema=False)
async def messages(request: Request) -> Response:
    """Anthropic's Messages API: passed through to Anthropic models, translated by litellm for
    others, governed as every endpoint is; errors in Anthropic's shape."""
    return await serve(request, MESSAGES_ENDPOINT)


@router.post("/v1/messages/count_tokens", responses=ERRORS, openapi_extra=_request_schema("messages"))
@router.post("/messages/count_tokens", responses=ERRORS, include_in_schema=False)
async def count_message_tokens(request: Request) -> Response:
    """The input tokens of a Messages request, as Anthropic counts them (asked of an Anthropic
    upstream; counted by the model's tokenizer otherwise). The text goes to the provider, so
    model access and block patterns apply; counting is free, so no budget is held or charged."""
    return await serve(request, MESSAGES_ENDPOINT, _count_tokens)


async def _count_tokens(request: Request, endpoint: Endpoint) -> Response:
    admitted = await _admit(request, endpoint)
    await _screened(admitted, endpoint)
    proxy, body, name, catalog = admitted.proxy, admitted.body, admitted.name, admitted.catalog
    target = catalog.routes[name].deployments[0]  # counting is free: no routing, no limits
    direct = catalog.direct_for(target, endpoint.wire)
    if direct is not None:
        try:
            answer = await direct.answer(proxy.http, endpoint, {k: v for k, v in body.items() if k not in ("max_tokens", "stream")}, "/messages/count_tokens")
        except Exception as exc:
            raise upstream_error(exc, name, secrets=deployment_secrets(catalog.deployments[target.id])) from None
        return JSONResponse({"input_tokens": int(answer.get("input_tokens") or 0)})
    text = json.dumps([body.get(field) for field in endpoint.prompt_fields if body.get(field) is not None], ensure_ascii=False)
    return JSONResponse({"input_tokens": await run_in_threadpool(count_tokens, admitted.model, text)})


class Facts:
    """What the metrics say of a call, filled in as it is learnt (`FACTS_KEY` in the scope)."""

    __slots__ = ("started", "domain", "model", "account", "upstream_seconds")

    def __init__(self, started: float) -> None:
        self.started = started
        self.domain, self.model, self.account = "none", "unknown", "none"
        self.upstream_seconds: float | None = None


FACTS_KEY = "cockpit.call"
REFUSALS = frozenset({"guardrail_blocked", "insufficient_quota", "rate_limit_exceeded"})
"""Error codes counted as the gateway's refusals (by `cockpit_refusals_total`)."""


async def serve(request: Request, endpoint: Endpoint, handler: Any = None) -> Response:
    """One call of `endpoint` (by `handler`, the governed call by default); every failure is
    an answer in the endpoint's API's error shape. Counted in the metrics when it ends (a
    stream when its last chunk is sent)."""
    facts = request.scope[FACTS_KEY] = Facts(time.perf_counter())
    try:
        response = await (handler or _serve)(request, endpoint)
    except ProxyError as exc:
        response = error_response(endpoint, exc)
        if exc.code in REFUSALS:
            metrics.record_refusal(facts.account, exc.code)
        elif exc.code and exc.code.startswith("upstream_"):
            metrics.record_upstream_error(facts.model, exc.code)
    except SQLAlchemyError as exc:
        log.error("proxy: database error: %s", type(exc).__name__)
        response = error_response(endpoint, ProxyError(503, "The gateway's database is unavailable; retry later.", "database_unavailable"))
    if isinstance(response, SettledStream):
        response.facts = facts
    else:
        metrics.record_call(endpoint.name, facts.domain, facts.model, response.status_code, time.perf_counter() - facts.started, facts.upstream_seconds)
    return response


def error_response(endpoint: Endpoint, error: ProxyError) -> Response:
    return Response(orjson.dumps(endpoint.error_body(error)), status_code=error.status, headers=error.headers, media_type="application/json")


@dataclass(frozen=True)
class Admitted:
    """A request past the checks every endpoint makes first: a credential of a person, a valid
    body, a model of the catalog allowed for the caller."""

    proxy: Proxy
    raw: bytes
    body: dict[str, Any]
    snapshot: AccountSnapshot
    caller: Caller
    catalog: Any
    name: str
    model: Any


async def _admit(request: Request, endpoint: Endpoint) -> Admitted:
    proxy = proxy_of(request)
    context = request.scope.get(SCOPE_KEY, EMPTY)
    account_id = credential_of(context)
    raw = await request.body()
    body = endpoint.parse(raw)
    snapshot = await account_snapshot(request, account_id)
    caller = caller_of(snapshot, context, request.headers.get("x-cockpit-domain"))
    catalog = await proxy.catalog_for(snapshot)
    name = body["model"]
    model = catalog.models.get(name)
    if model is None:
        raise ProxyError(404, f"The model `{name}` does not exist.", "model_not_found", param="model")
    facts = request.scope.get(FACTS_KEY)
    if facts is not None:
        facts.domain, facts.model, facts.account = caller.domain, name, snapshot.name
    if name not in allowed_for(snapshot, caller):
        raise ProxyError(403, f"Model `{name}` is not allowed for {caller.user} in {caller.domain}.", "model_not_allowed", param="model")
    return Admitted(proxy, raw, body, snapshot, caller, catalog, name, model)


async def _screened(admitted: Admitted, endpoint: Endpoint) -> tuple[Any, tuple[Hit, ...]]:
    """The caller's screen and the hits of the request's texts; 400 on a block pattern."""
    caller = admitted.caller
    screen = screen_for(admitted.snapshot, caller.domain, caller.user, caller.agent)
    hits = await scan_texts(screen, texts_of(admitted.body, endpoint.texts), "request")
    blocked = _blocked(hits, "request")
    if blocked is not None:
        log.info("request of %s blocked by guardrail %s", caller.user, next(h for h in hits if h.action == "block").preset)
        raise blocked
    return screen, hits


GENAI_OPERATIONS = {"chat.completions": "chat", "completions": "text_completion", "embeddings": "embeddings", "responses": "chat", "messages": "chat"}
"""The GenAI semantic conventions' `gen_ai.operation.name` of each endpoint."""


async def _serve(request: Request, endpoint: Endpoint) -> Response:
    with span("cockpit.policy"):
        admitted = await _admit(request, endpoint)
    proxy, raw, body, snapshot, caller, catalog = admitted.proxy, admitted.raw, admitted.body, admitted.snapshot, admitted.caller, admitted.catalog
    name, model = admitted.name, admitted.model
    bound = endpoint.bound(body, len(raw), model.max_output_tokens)
    tokens = bound.prompt_tokens + bound.output_tokens
    allowed = allowed_for(snapshot, caller)
    plan = proxy.router.attempts(name, catalog.routes, lambda other: other in allowed, tokens)
    if not plan:
        raise ProxyError(429, f"Every deployment of model `{name}` has used what it takes this minute; retry in a minute.", "deployments_busy", headers={"retry-after": str(60 - int(time.time()) % 60)})
    if any(catalog.direct_for(a.deployment, endpoint.wire) is None for a in plan) and (unknown := endpoint.unknown(body)):
        raise ProxyError(400, f"Unrecognized request argument supplied: {', '.join(unknown)}.", "unknown_parameter", param=unknown[0])
    with span("cockpit.guardrails"):
        screen, hits = await _screened(admitted, endpoint)

    admission = await proxy.admit(counters_for(snapshot, caller.domain, caller.user, caller.agent, name), tokens)
    try:
        started = now()
        cycle = cached_cycle(snapshot, started) or await run_in_threadpool(cycle_of, proxy.engine, snapshot, started)
        limits = limits_for(snapshot, caller.domain, caller.user, cycle)
        factor = credit_factor(snapshot)
        # The hold covers whichever model of the plan serves the call: priced at the dearest.
        ceiling = max(catalog.models[m].ceiling(bound.prompt_tokens, bound.output_tokens) for m in {a.model for a in plan}) * factor
        with span("cockpit.budget"):
            reservation = await proxy.reserve(caller.account_id, cycle.window, limits, ceiling, seed_from_ledger(proxy.engine, snapshot, cycle.window))
    except BaseException as exc:  # never reached the upstream: it used no tokens
        with anyio.CancelScope(shield=True):
            await proxy.settle_rate(admission, 0)
        if isinstance(exc, ProxyError) and admission is not None:
            exc.headers = {**admission.headers(), **exc.headers}
        raise

    # From here on a hold is taken: every way out settles it (Call.finish runs once).
    call = Call(proxy, endpoint, caller, snapshot, name, model, reservation, started, hits, factor, body, request.scope[FACTS_KEY].started, admission)
    try:
        return await _attempt(request, call, catalog, plan, tokens, screen)
    except Exception as exc:
        error = exc if isinstance(exc, ProxyError) else upstream_error(exc, name, secrets=call.secrets)
        if error.code == "upstream_timeout":  # the provider had the prompt and may bill it
            await call.finish_abandoned(0, "", exc)
        else:  # a provider bills no request it refused or failed
            await call.finish(Decimal(0), {"error": type(exc).__name__})
        error.headers = {**call.headers, **error.headers}
        raise error from None
    except BaseException as exc:  # cancelled: the client went away while the upstream worked on it
        with anyio.CancelScope(shield=True):
            await call.finish_abandoned(0, "", exc)
        raise


async def _attempt(request: Request, call: "Call", catalog: Any, plan: list[Attempt], tokens: int, screen: Any) -> Response:
    """The attempts of the plan in order until one answers: a failure the router says to move
    on from (429, 5xx, timeout, unreachable, a deployment's 401/403/404) goes to the next
    deployment or fallback; the last failure, or one no other upstream would fix (400, 413,
    422), is raised. A stream is retried only before it sends anything: once it is returned,
    its bytes are the client's."""
    proxy, endpoint, body = call.proxy, call.endpoint, call.body
    streamed = bool(body.get("stream"))
    for index, attempt in enumerate(plan):
        target = catalog.deployments[attempt.deployment.id]
        direct = catalog.direct_for(attempt.deployment, endpoint.wire)
        call.serve_with(attempt, catalog.models[attempt.model], deployment_secrets(target))
        proxy.router.start(attempt, tokens)
        asked = time.perf_counter()
        operation = GENAI_OPERATIONS.get(endpoint.name, "chat")
        try:
            with span(f"{operation} {attempt.model}", {
                GEN_AI_OPERATION_NAME: operation, GEN_AI_REQUEST_MODEL: attempt.model,
                GEN_AI_PROVIDER_NAME: str(target.get("model") or "").partition("/")[0] or "unknown",
            }) as upstream:
                if streamed:
                    events = await _open_stream(call, direct, target)
                elif direct is not None:
                    answer = await direct.answer(proxy.http, endpoint, body)
                else:
                    answer = await translated_answer(endpoint.translate, target, _params(body))
                if not streamed and tracing_enabled() and (usage := endpoint.usage(answer)) is not None:
                    upstream.set_attributes({GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens, GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens})
        except Exception as exc:
            moved_on = _failed(call, attempt, exc, tokens, last=index + 1 == len(plan))
            if moved_on is None:
                raise
            if moved_on is Outcome.TIMEOUT:
                await call.timed_out()
            continue
        request.scope[FACTS_KEY].upstream_seconds = time.perf_counter() - asked
        call.attempts.append(_attempt_record(attempt, Outcome.OK))
        if streamed:
            proxy.router.finish(attempt, Outcome.OK, tokens)
            return SettledStream(call, events, call.relay(events, call.wants_usage, screen.stream()), media_type="text/event-stream", headers={**call.headers, "cache-control": "no-cache"})
        usage = endpoint.usage(answer)
        proxy.router.finish(attempt, Outcome.OK, tokens, tokens=usage.input_tokens + usage.output_tokens if usage else None)
        return await call.answer(answer, screen)
    raise AssertionError("a routing plan is never empty")  # pragma: no cover


async def _open_stream(call: "Call", direct: Any, target: Any) -> Any:
    """The upstream's stream of events, asking it for usage always (the charge is exact)."""
    proxy, endpoint, body = call.proxy, call.endpoint, call.body
    if direct is None:
        return await translated_stream(endpoint, target, _params(body))
    options = body.get("stream_options")
    sent = {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}} if endpoint.asks_usage else body
    return await direct.stream(proxy.http, endpoint, sent)


def _failed(call: "Call", attempt: Attempt, exc: Exception, tokens: int, *, last: bool) -> Outcome | None:
    """Record a failed attempt (router, ledger metadata, logs, metrics): its outcome when the
    router says to make the next attempt and there is one; None when the failure is the call's
    (`serve` then counts it in the metrics)."""
    error = upstream_error(exc, attempt.model, secrets=call.secrets)
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    outcome = outcome_of(status, timeout=error.code == "upstream_timeout", unreachable=error.code == "upstream_unreachable")
    call.attempts.append(_attempt_record(attempt, outcome))
    if outcome is Outcome.MISCONFIGURED:
        log.error("deployment %s of model %s refused the gateway (HTTP %s): a configuration error (its api_key or litellm.model), not cooled down", attempt.deployment.name, attempt.model, status)
    if not call.proxy.router.finish(attempt, outcome, tokens, status=status) or last:
        return None
    log.warning("model %s deployment %s failed (%s); trying the next upstream", attempt.model, attempt.deployment.name, outcome.value)
    metrics.record_upstream_error(attempt.model, error.code or "upstream_error")
    return outcome


def _attempt_record(attempt: Attempt, outcome: Outcome) -> dict[str, str]:
    """One attempt as the ledger row's metadata lists it."""
    return {"model": attempt.model, "deployment": attempt.deployment.name, "outcome": outcome.value}


def _params(body: Mapping[str, Any]) -> dict[str, Any]:
    """A request's fields as litellm's keywords (it is given the model by the deployment)."""
    return {key: value for key, value in body.items() if key not in ("model", "stream", "stream_options")}


class SettledStream(StreamingResponse):
    """A streamed answer whose hold is settled however the response ends, even when the client
    went away before the first byte (the relay generator then never starts, so its own
    `finally` would never run)."""

    def __init__(self, call: "Call", upstream: Any, content: AsyncIterator[bytes], **options: Any) -> None:
        super().__init__(content, **options)
        self.call, self.upstream = call, upstream
        self.facts: Facts | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._stream(receive, send)
        finally:
            if self.facts is not None:
                metrics.record_call(self.call.endpoint.name, self.facts.domain, self.facts.model, self.status_code, time.perf_counter() - self.facts.started)
            with anyio.CancelScope(shield=True):
                closing = getattr(self.body_iterator, "aclose", None)
                if closing is not None:
                    await closing()
                if not self.call.finished:  # the relay never ran: nothing closed the upstream
                    await _close(self.upstream)
                    await self.call.finish_abandoned(0, "", None)


    async def _stream(self, receive: Any, send: Any) -> None:
        """Stream the answer until it ends, or until `DRAIN_SECONDS` after the client went away.

        The provider bills the whole answer whether or not anyone reads it, so a stream whose
        client left goes on reading (its events go nowhere: uvicorn drops what is sent to a
        closed connection) and is charged by the usage at its end, when that comes within
        `DRAIN_SECONDS`; after that it is cut and charged what came back. (Cancelling at
        once, as before, broke off the upstream read it landed in, and the stream was charged
        only what its client had seen.)

        Starlette does the listening, under an ASGI 2.3 server such as uvicorn, with an anyio
        task group of two tasks per stream: a tenth of a stream's Python, before its first
        chunk too. Here the stream runs in the request's own task, in a cancel scope whose
        deadline one asyncio task sets when the disconnect comes: an anyio scope, because the
        charge runs in shielded scopes, which only anyio's cancellation respects."""
        scope = anyio.CancelScope()

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            scope.deadline = min(scope.deadline, anyio.current_time() + DRAIN_SECONDS)

        listener = asyncio.ensure_future(listen())
        try:
            with scope:
                await self.stream_response(send)
        finally:
            listener.cancel()


async def _close(stream: Any) -> None:
    closing = getattr(stream, "aclose", None)
    if closing is not None:
        try:
            await closing()  # frees the upstream connection
        except Exception:
            pass


def _event(name: str | None, data: Mapping[str, Any]) -> bytes:
    """One server-sent event."""
    payload = b"data: " + orjson.dumps(data) + b"\n\n"
    return b"event: " + name.encode() + b"\n" + payload if name else payload


DONE = b"data: [DONE]\n\n"
HELD_EVENTS = 16
"""The most closing events a stream holds back until its charge is spooled (Anthropic sends
two, the Responses API one, chat completions its usage chunk): an upstream that reports usage
early does not get its whole answer held."""


def _rename(data: dict[str, Any], name: str) -> None:
    """The answer names the model as the caller did, not as the upstream knows it."""
    if "model" in data:
        data["model"] = name
    inner = data.get("response")
    if isinstance(inner, dict) and "model" in inner:
        inner["model"] = name


class Call:
    """One upstream call after its hold was taken: charge it (exactly once), log it, shape the
    answer."""

    def __init__(self, proxy: Proxy, endpoint: Endpoint, caller: Caller, snapshot: AccountSnapshot, name: str, model: Any, reservation: Any, started: Any, hits: tuple[Hit, ...], factor: Decimal, body: dict[str, Any], clock: float, admission: Admission | None = None) -> None:
        self.proxy, self.endpoint, self.caller, self.snapshot, self.name, self.model = proxy, endpoint, caller, snapshot, name, model
        self.reservation, self.started, self.hits, self.factor, self.body = reservation, started, hits, factor, body
        self.clock = clock
        """`time.perf_counter()` when the request arrived (for time to first chunk)."""
        self.admission = admission
        """The call's rate-limit admission (None: the caller has no limits)."""
        self.requested = name
        """The model the caller asked for; `name` and `model` are the one serving the call."""
        self.deployment: str | None = None
        self.attempts: list[dict[str, str]] = []
        self.secrets: tuple[str, ...] = ()
        """The credentials of the deployment being called (masked out of its errors)."""
        self.earlier_tokens, self.earlier_cost = 0, Decimal(0)
        """The prompts of attempts that timed out before another was made (`timed_out`)."""
        self.request_id = f"ck-{uuid.uuid4().hex}"
        self.row_id = uuid.uuid4()
        self.opening: Usage | None = None
        self.finished = False

    def serve_with(self, attempt: Attempt, model: Any, secrets: tuple[str, ...]) -> None:
        """The attempt about to be made: its model is charged and named in the answer."""
        self.name, self.model, self.deployment, self.secrets = attempt.model, model, attempt.deployment.name, secrets

    @property
    def wants_usage(self) -> bool:
        """Whether the client asked for the usage chunk of a stream (`stream_options`)."""
        options = self.body.get("stream_options")
        return bool(options.get("include_usage")) if isinstance(options, dict) else False

    @property
    def headers(self) -> dict[str, str]:
        """`x-cockpit-request-id` is the id of the call's ledger row; the `x-ratelimit-*` headers
        are those of its admission."""
        found = {"x-request-id": self.request_id, "x-cockpit-request-id": str(self.row_id)}
        return {**self.admission.headers(), **found} if self.admission is not None else found

    def error_event(self, error: ProxyError) -> bytes:
        """An error inside a stream that has begun, in the endpoint's shape."""
        return _event("error" if self.endpoint.named_events else None, self.endpoint.error_body(error))

    def with_opening(self, usage: Usage) -> Usage:
        """The final usage, with the input its stream's first event stated (a final event that
        repeats the input counts it once)."""
        if self.opening is None:
            return usage
        return Usage(max(usage.input_tokens, self.opening.input_tokens), usage.output_tokens, max(usage.cached_input_tokens, self.opening.cached_input_tokens))

    def cost(self, usage: Usage | None) -> Decimal:
        if usage is None:
            return Decimal(0)
        return self.model.cost(usage.input_tokens, usage.output_tokens, usage.cached_input_tokens)

    async def finish(self, raw_cost: Decimal, metadata: dict[str, Any]) -> None:
        """Settle the hold with the real charge and queue the ledger row, once. A charge above
        the hold cannot happen when the upstream honours the bounds it was sent; if one does,
        it is clamped to the hold (so no limit is ever passed) and recorded as clamped."""
        if self.finished:
            return
        self.finished = True
        if self.earlier_tokens:
            raw_cost += self.earlier_cost
            metadata = {**metadata, "timed_out_prompt_tokens": self.earlier_tokens}
        row = ledger_row(
            caller=self.caller, attribution=attribution(self.snapshot, self.caller.domain, self.caller.user),
            model=self.name, raw_cost=raw_cost, factor=self.factor, started=self.started, request_id=self.request_id,
            guardrail_code=next((h for h in self.hits if h.action == "block"), self.hits[0]).preset if self.hits else None,
            metadata={"endpoint": self.endpoint.name, **self.routing(), **metadata, **({"guardrails": [hit.as_dict() for hit in self.hits]} if self.hits else {})},
            row_id=self.row_id,
        )
        if self.reservation is not None and row["credits"] > self.reservation.amount:
            excess = row["credits"] - self.reservation.amount
            log.warning("request %s of %s cost %s credits over its hold of %s; charged the hold", self.request_id, self.caller.user, excess, self.reservation.amount)
            row["metadata"] = {**row["metadata"], "clamped_credits": str(excess), "billed_credits": str(row["credits"])}
            row["credits"] = self.reservation.amount
            row["raw_cost"] = credits(self.reservation.amount / self.factor) if self.factor else row["raw_cost"]
        wanted = raw_cost > 0 or self.hits or "error" not in metadata
        await self.proxy.settle(self.reservation, row["credits"], row if wanted else None)
        await self.proxy.settle_rate(self.admission, int(metadata.get("prompt_tokens") or 0) + int(metadata.get("completion_tokens") or 0) + self.earlier_tokens)
        metrics.record_usage(self.snapshot.name, self.name, int(metadata.get("prompt_tokens") or 0), int(metadata.get("completion_tokens") or 0), float(row["credits"]))

    def routing(self) -> dict[str, Any]:
        """How the call was routed, for its ledger row: the model asked for, the deployment that
        served it (or was tried last) and every attempt with its outcome."""
        return {"requested_model": self.requested, "served_model": self.name, "deployment": self.deployment, "attempts": self.attempts}

    def prompt_tokens(self) -> int:
        """The request's prompt by the serving model's tokenizer, with the template's tokens per
        message: what a provider bills for a call it gave no usage of. CPU-bound: off the loop."""
        prompt_text = json.dumps([self.body.get(field) for field in self.endpoint.prompt_fields if self.body.get(field) is not None], ensure_ascii=False)
        messages = self.body.get("messages")
        return count_tokens(self.model, prompt_text) + MESSAGE_OVERHEAD_TOKENS * (len(messages) if isinstance(messages, list) else 0)

    async def timed_out(self) -> None:
        """An attempt that timed out before the next is made: its provider had the prompt and
        may bill it, so it is charged with the call, at that attempt's model's prices (within the
        hold, as every charge)."""
        prompt = await run_in_threadpool(self.prompt_tokens)
        self.earlier_tokens += prompt
        self.earlier_cost += self.model.cost(prompt, 0)

    async def finish_abandoned(self, chunks: int, text: str, failure: BaseException | None) -> None:
        """A stream that ended without the upstream's usage (broken, cut by a guardrail, or the
        client went away): charged its prompt and the text that came back, counted by the
        model's tokenizer (at least one token per chunk), never above the hold."""
        if self.finished:
            return
        prompt, completion = await run_in_threadpool(lambda: (self.prompt_tokens(), count_tokens(self.model, text)))
        completion = max(completion, chunks)
        metadata = {"stream": True, "partial": True, "chunks": chunks, "prompt_tokens": prompt, "completion_tokens": completion,
                    "failure": type(failure).__name__ if failure else "client went away"}
        await self.finish(self.model.cost(prompt, completion), metadata)

    async def answer(self, answer: dict[str, Any], screen: Any) -> Response:
        usage = self.endpoint.usage(answer)
        raw_cost = self.cost(usage)
        _rename(answer, self.name)
        try:
            hits = await scan_texts(screen, self.endpoint.answer_texts(answer), "response")
        except BaseException:  # refused unscreened, but the provider billed it: charge it
            with anyio.CancelScope(shield=True):
                await self.finish(raw_cost, _usage_metadata(usage, stream=False))
            raise
        self.hits += hits
        await self.finish(raw_cost, _usage_metadata(usage, stream=False))
        blocked = _blocked(hits, "response")
        if blocked is not None:
            metrics.record_refusal(self.snapshot.name, "guardrail_blocked")
            blocked.headers = self.headers
            return error_response(self.endpoint, blocked)
        return Response(orjson.dumps(answer), media_type="application/json", headers=self.headers)

    async def relay(self, events: Any, want_usage: bool, screen: StreamScreen) -> AsyncIterator[bytes]:
        """The upstream's events, screened and renamed. The answer's last events (from the one
        that carries the usage on, and the closing `[DONE]`) are held back until the call's
        charge is spooled: a client that saw its answer complete was charged for it, even if the
        server is killed the next moment."""
        usage, chunks, failure, seen = None, 0, None, []
        held: list[bytes] = []
        delta_texts = self.endpoint.delta_texts or (lambda data: [])
        try:
            async for name, data in events:
                if self.endpoint.named_events:
                    name = name or data.get("type")
                if self.endpoint.opening_usage is not None:
                    self.opening = self.endpoint.opening_usage(data) or self.opening
                found = self.endpoint.usage(data)
                if found is not None:
                    usage = self.with_opening(found)
                    if self.endpoint.asks_usage and not data.get("choices"):  # the usage-only last chunk
                        if want_usage:
                            data["model"] = self.name
                            held.append(_event(name, data))
                        continue
                if self.endpoint.asks_usage and not want_usage:
                    data.pop("usage", None)  # asked of the upstream for the charge, not by the client
                chunks += 1
                hit = None
                for index, part, text in delta_texts(data):
                    seen.append(text)
                    hit = screen.feed(index, text, part=part) or hit
                if hit is not None:
                    self.hits += (hit,)
                    failure = GuardrailStop(hit.preset)
                    yield self.error_event(_blocked((hit,), "response"))
                    return
                _rename(data, self.name)
                if chunks == 1:
                    metrics.record_first_chunk(self.name, time.perf_counter() - self.clock)
                if held or found is not None and self.endpoint.named_events:  # the closing events (message_delta, response.completed, …)
                    held.append(_event(name, data))
                    if len(held) > HELD_EVENTS:  # usage early in a long answer: these are not its closing events
                        for event in held:
                            yield event
                        held.clear()
                else:
                    yield _event(name, data)
            last = await _finish_screen(screen, seen)
            if last is not None:
                self.hits += (last,)
                yield self.error_event(_blocked((last,), "response"))
                return
            with anyio.CancelScope(shield=True):  # a client going away now must not cut the charge short
                await self.charge_stream(events, usage, chunks, seen, screen, None)
            for event in held:
                yield event
            if not self.endpoint.named_events:
                yield DONE
        except Exception as exc:
            failure = exc
            error = ProxyError(502, f"The upstream provider of model `{self.name}` broke off the answer after {chunks} chunk(s); what arrived is charged. Retry the request.", "upstream_stream_broken")
            log.warning("stream of %s from %s broke after %d chunk(s): %s", self.name, self.caller.user, chunks, type(exc).__name__)
            metrics.record_upstream_error(self.name, error.code or "upstream_stream_broken")
            yield self.error_event(error)
        finally:
            with anyio.CancelScope(shield=True):
                await self.charge_stream(events, usage, chunks, seen, screen, failure)

    async def charge_stream(self, events: Any, usage: Usage | None, chunks: int, seen: list[str], screen: StreamScreen, failure: BaseException | None) -> None:
        """Close the upstream and charge the stream, once: by its usage, else (broken, cut, or
        the client went away) by what came back."""
        if self.finished:
            await _close(events)
            return
        if usage is None and failure is None:
            # The client went away: the provider goes on to bill the whole answer
            # (hidden reasoning tokens too), so read on, briefly, for its usage.
            drained = await _drain_usage(events, self.endpoint)
            usage = self.with_opening(drained) if drained is not None else None
        await _close(events)
        self.hits += tuple(h for h in screen.hits() if h not in self.hits)
        if usage is not None:
            await self.finish(self.cost(usage), _usage_metadata(usage, stream=True))
        else:
            await self.finish_abandoned(chunks, "".join(seen), failure)


DRAIN_SECONDS = 10.0
"""How long an abandoned stream is read on for the usage the provider bills."""


async def _drain_usage(events: Any, endpoint: Endpoint) -> Usage | None:
    usage = None
    with anyio.move_on_after(DRAIN_SECONDS):
        try:
            async for _name, data in events:
                usage = endpoint.usage(data) or usage
        except Exception:
            pass
    return usage


async def _finish_screen(screen: StreamScreen, seen: list[str]) -> Hit | None:
    """The last, whole-text scan of a streamed answer; off the event loop when it is large."""
    if sum(len(text) for text in seen) <= INLINE_LIMIT:
        return screen.finish()
    return await run_in_threadpool(screen.finish)


class GuardrailStop(Exception):
    """A streamed answer ended by a block pattern (recorded as the stream's failure)."""


def _usage_metadata(usage: Usage | None, *, stream: bool) -> dict[str, Any]:
    if usage is None:
        return {"stream": stream}
    found: dict[str, Any] = {"stream": stream, "prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens}
    if usage.cached_input_tokens:
        found["cached_prompt_tokens"] = usage.cached_input_tokens
    return found


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "cockpit"}


async def _models_of(request: Request) -> list[str]:
    """The catalog's models the caller may use, sorted."""
    proxy = proxy_of(request)
    context = request.scope.get(SCOPE_KEY, EMPTY)
    snapshot = await account_snapshot(request, credential_of(context))
    caller = caller_of(snapshot, context, request.headers.get("x-cockpit-domain"))
    catalog = await proxy.catalog_for(snapshot)
    allowed = allowed_for(snapshot, caller)
    return [name for name in sorted(catalog.models) if name in allowed]


@router.get("/v1/models", responses={k: v for k, v in ERRORS.items() if k in (401, 403)})
@router.get("/models", include_in_schema=False)
async def list_models(request: Request) -> Response:
    """The models the caller may use, in OpenAI's list shape."""
    try:
        names = await _models_of(request)
    except ProxyError as exc:
        return exc.response()
    return JSONResponse({"object": "list", "data": [_model_entry(name) for name in names]})


@router.get("/v1/models/{model_id:path}", responses={k: v for k, v in ERRORS.items() if k in (401, 403, 404)})
@router.get("/models/{model_id:path}", include_in_schema=False)
async def retrieve_model(request: Request, model_id: str) -> Response:
    """One model the caller may use; 404 for a model that does not exist or is not theirs (the
    catalog of other accounts' grants is not the caller's business)."""
    try:
        names = await _models_of(request)
    except ProxyError as exc:
        return exc.response()
    if model_id not in names:
        return ProxyError(404, f"The model `{model_id}` does not exist or you do not have access to it.", "model_not_found", param="model").response()
    return JSONResponse(_model_entry(model_id))


@router.get("/v1/me/usage", responses={k: v for k, v in ERRORS.items() if k in (401, 403)})
async def my_usage(request: Request) -> Response:
    """The caller's own spend in the current cycle, for any user credential: each limit of
    their chain (own allocation, teams, orgs or pool, the account) with what it has used and
    has left, and their spend by model and endpoint. Read from the ledger, which the gateway
    writes in batches: a call shows here within a second or so of its answer."""
    try:
        proxy = proxy_of(request)
        context = request.scope.get(SCOPE_KEY, EMPTY)
        snapshot = await account_snapshot(request, credential_of(context))
        caller = caller_of(snapshot, context, request.headers.get("x-cockpit-domain"))
    except ProxyError as exc:
        return exc.response()
    started = now()
    cycle = cached_cycle(snapshot, started) or await run_in_threadpool(cycle_of, proxy.engine, snapshot, started)
    limits = limits_for(snapshot, caller.domain, caller.user, cycle)
    plan = snapshot.graph.active_plan()
    allocated = set(snapshot.graph.allocations.get(plan, {})) if plan else set()

    def read() -> tuple[Any, list[Spend]]:
        with proxy.engine.connect() as connection:
            return scope_usage(connection, snapshot.account_id, cycle.window, allocated), caller_spend(connection, snapshot.account_id, cycle.window, caller.domain, caller.user)

    used, spend = await run_in_threadpool(read)
    return JSONResponse({
        "user": caller.user,
        "domain": caller.domain,
        "cycle": {"start": iso(cycle.window.start), "end": iso(cycle.window.end)},
        "limits": [
            {"scope": limit.scope, "limit": float(limit.limit), "used": round(used[limit.scope], 8), "remaining": max(0.0, round(float(limit.limit) - used[limit.scope], 8))}
            for limit in limits
        ],
        "spend": [{"model": s.model, "endpoint": s.endpoint, "requests": s.requests, "credits": float(s.credits)} for s in spend],
        "total_credits": float(sum((s.credits for s in spend), Decimal(0))),
    })
