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

from cockpit.budgets.counters import credits
from cockpit.proxy.bounds import MESSAGE_OVERHEAD_TOKENS, request_bound
from cockpit.proxy.budget import attribution, cached_cycle, cycle_of, limits_for, seed_from_ledger
from cockpit.proxy.errors import ProxyError, deployment_secrets, upstream_error
from cockpit.proxy.guard import INLINE_LIMIT, Hit, StreamScreen, request_texts, response_texts, scan_texts, screen_for
from cockpit.proxy.llm import complete, count_tokens
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
    "reasoning_effort", "service_tier", "verbosity",
})
"""Chat Completions parameters passed to the upstream. Anything else is refused: litellm would
take `api_base`, `api_key` or `metadata` from the body and send the gateway's key elsewhere.
`web_search_options` is refused too: providers bill its searches and the pages they read as
input, which no bound known before the call covers."""


def proxy_of(request: Request) -> Proxy:
    proxy = getattr(request.app.state, "proxy", None)
    if proxy is None:
        raise ProxyError(503, "The proxy is not running in this server.", "proxy_unavailable")
    return proxy


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
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
    context = request.scope.get(SCOPE_KEY, EMPTY)
    account_id = credential_of(context)
    raw = await request.body()
    body = _body(raw)
    snapshot = await account_snapshot(request, account_id)
    caller = caller_of(snapshot, context, request.headers.get("x-cockpit-domain"))
    catalog = await proxy.catalog_for(snapshot)
    name = body["model"]
    model = catalog.models.get(name)
    if model is None:
        raise ProxyError(404, f"The model `{name}` does not exist.", "model_not_found", param="model")
    if name not in allowed_for(snapshot, caller):
        raise ProxyError(403, f"Model `{name}` is not allowed for {caller.user} in {caller.domain}.", "model_not_allowed", param="model")

    bound = request_bound(body, len(raw), model.max_output_tokens)
    screen = screen_for(snapshot, caller.domain, caller.user, caller.agent)
    hits = await scan_texts(screen, request_texts(body), "request")
    blocked = _blocked(hits, "request")
    if blocked is not None:
        log.info("request of %s blocked by guardrail %s", caller.user, next(h for h in hits if h.action == "block").preset)
        raise blocked

    started = now()
    cycle = cached_cycle(snapshot, started) or await run_in_threadpool(cycle_of, proxy.engine, snapshot, started)
    limits = limits_for(snapshot, caller.domain, caller.user, cycle)
    factor = credit_factor(snapshot)
    ceiling = model.cost(bound.prompt_tokens, bound.output_tokens) * factor
    reservation = await proxy.reserve(caller.account_id, cycle.window, limits, ceiling, seed_from_ledger(proxy.engine, snapshot, cycle.window))

    # From here on a hold is taken: every way out settles it (Call.finish runs once).
    call = Call(proxy, caller, snapshot, name, model, reservation, started, hits, factor, body)
    params = {key: value for key, value in body.items() if key not in HANDLED}
    streamed = bool(body.get("stream"))
    try:
        if streamed:
            want_usage = bool(body["stream_options"].get("include_usage")) if isinstance(body.get("stream_options"), dict) else False
            stream = await complete(catalog.deployments[name], messages=body["messages"], stream=True, stream_options={"include_usage": True}, **params)
            if stream is None:
                raise EmptyAnswer("the upstream returned no stream")
            return SettledStream(call, stream, call.relay(stream, want_usage, screen.stream()), media_type="text/event-stream", headers={"x-request-id": call.request_id, "cache-control": "no-cache"})
        response = await complete(catalog.deployments[name], messages=body["messages"], **params)
        if response is None or not getattr(response, "choices", None):
            raise EmptyAnswer("the upstream returned no answer")
        return await call.answer(response, screen)
    except Exception as exc:
        error = exc if isinstance(exc, ProxyError) else upstream_error(exc, name, secrets=deployment_secrets(catalog.deployments[name]))
        if error.code == "upstream_timeout":  # the provider had the prompt and may bill it
            await call.finish_abandoned(0, "", exc)
        else:  # a provider bills no request it refused or failed
            await call.finish(Decimal(0), {"error": type(exc).__name__})
        raise error from None
    except BaseException as exc:  # cancelled: the client went away while the upstream worked on it
        with anyio.CancelScope(shield=True):
            await call.finish_abandoned(0, "", exc)
        raise


class EmptyAnswer(Exception):
    """litellm gave back nothing for a call (it does for some upstream errors, e.g. a 422)."""


class SettledStream(StreamingResponse):
    """A streamed answer whose hold is settled however the response ends, even when the client
    went away before the first byte (the relay generator then never starts, so its own
    `finally` would never run)."""

    def __init__(self, call: "Call", upstream: Any, content: AsyncIterator[bytes], **options: Any) -> None:
        super().__init__(content, **options)
        self.call, self.upstream = call, upstream

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                closing = getattr(self.body_iterator, "aclose", None)
                if closing is not None:
                    await closing()
                if not self.call.finished:  # the relay never ran: nothing closed the upstream
                    await _close(self.upstream)
                    await self.call.finish_abandoned(0, "", None)


async def _close(stream: Any) -> None:
    closing = getattr(stream, "aclose", None)
    if closing is not None:
        try:
            await closing()  # frees the upstream connection
        except Exception:
            pass


class Call:
    """One upstream call after its hold was taken: charge it (exactly once), log it, shape the
    answer."""

    def __init__(self, proxy: Proxy, caller: Caller, snapshot: AccountSnapshot, name: str, model: Any, reservation: Any, started: Any, hits: tuple[Hit, ...], factor: Decimal, body: dict[str, Any]) -> None:
        self.proxy, self.caller, self.snapshot, self.name, self.model = proxy, caller, snapshot, name, model
        self.reservation, self.started, self.hits, self.factor, self.body = reservation, started, hits, factor, body
        self.request_id = f"ck-{uuid.uuid4().hex}"
        self.finished = False

    async def finish(self, raw_cost: Decimal, metadata: dict[str, Any]) -> None:
        """Settle the hold with the real charge and queue the ledger row, once. A charge above
        the hold cannot happen when the upstream honours the bounds it was sent; if one does,
        it is clamped to the hold (so no limit is ever passed) and recorded as clamped."""
        if self.finished:
            return
        self.finished = True
        row = ledger_row(
            caller=self.caller, attribution=attribution(self.snapshot, self.caller.domain, self.caller.user),
            model=self.name, raw_cost=raw_cost, factor=self.factor, started=self.started, request_id=self.request_id,
            guardrail_code=next((h for h in self.hits if h.action == "block"), self.hits[0]).preset if self.hits else None,
            metadata={**metadata, **({"guardrails": [hit.as_dict() for hit in self.hits]} if self.hits else {})},
        )
        if self.reservation is not None and row["credits"] > self.reservation.amount:
            excess = row["credits"] - self.reservation.amount
            log.warning("request %s of %s cost %s credits over its hold of %s; charged the hold", self.request_id, self.caller.user, excess, self.reservation.amount)
            row["metadata"] = {**row["metadata"], "clamped_credits": str(excess), "billed_credits": str(row["credits"])}
            row["credits"] = self.reservation.amount
            row["raw_cost"] = credits(self.reservation.amount / self.factor) if self.factor else row["raw_cost"]
        wanted = raw_cost > 0 or self.hits or "error" not in metadata
        await self.proxy.settle(self.reservation, row["credits"], row if wanted else None)

    async def finish_abandoned(self, chunks: int, text: str, failure: BaseException | None) -> None:
        """A stream that ended without the upstream's usage (broken, cut by a guardrail, or the
        client went away): charged its prompt and the text that came back, counted by the
        model's tokenizer (at least one token per chunk), never above the hold."""
        if self.finished:
            return
        prompt_text = json.dumps([self.body.get(field) for field in PROMPT_FIELDS if self.body.get(field) is not None], ensure_ascii=False)
        prompt, completion = await run_in_threadpool(lambda: (count_tokens(self.model, prompt_text), count_tokens(self.model, text)))
        prompt += MESSAGE_OVERHEAD_TOKENS * len(self.body.get("messages") or ())
        completion = max(completion, chunks)
        metadata = {"stream": True, "partial": True, "chunks": chunks, "prompt_tokens": prompt, "completion_tokens": completion,
                    "failure": type(failure).__name__ if failure else "client went away"}
        await self.finish(self.model.cost(prompt, completion), metadata)

    async def answer(self, response: Any, screen: Any) -> Response:
        usage = getattr(response, "usage", None)
        raw_cost = _cost(response, usage, self.model)
        response.model = self.name
        answer = response.model_dump(mode="json", exclude_none=True)  # screened and sent alike
        try:
            hits = await scan_texts(screen, response_texts(answer), "response")
        except BaseException:  # refused unscreened, but the provider billed it: charge it
            with anyio.CancelScope(shield=True):
                await self.finish(raw_cost, _usage_metadata(usage, stream=False))
            raise
        self.hits += hits
        await self.finish(raw_cost, _usage_metadata(usage, stream=False))
        blocked = _blocked(hits, "response")
        if blocked is not None:
            return blocked.response()
        return Response(json.dumps(answer, separators=(",", ":")), media_type="application/json", headers={"x-request-id": self.request_id})

    async def relay(self, stream: Any, want_usage: bool, screen: StreamScreen) -> AsyncIterator[bytes]:
        usage, chunks, failure, seen = None, 0, None, []
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
                hit = None
                for index, part, text in delta_texts(chunk):
                    seen.append(text)
                    hit = screen.feed(index, text, part=part) or hit
                if hit is not None:
                    self.hits += (hit,)
                    failure = GuardrailStop(hit.preset)
                    yield b"data: " + json.dumps(_blocked((hit,), "response").body()).encode() + b"\n\n"
                    return
                chunk.model = self.name
                yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
            last = await _finish_screen(screen, seen)
            if last is not None:
                self.hits += (last,)
                yield b"data: " + json.dumps(_blocked((last,), "response").body()).encode() + b"\n\n"
                return
            yield b"data: [DONE]\n\n"
        except Exception as exc:
            failure = exc
            error = ProxyError(502, f"The upstream provider of model `{self.name}` broke off the answer after {chunks} chunk(s); what arrived is charged. Retry the request.", "upstream_stream_broken")
            log.warning("stream of %s from %s broke after %d chunk(s): %s", self.name, self.caller.user, chunks, type(exc).__name__)
            yield b"data: " + json.dumps(error.body()).encode() + b"\n\n"
        finally:
            with anyio.CancelScope(shield=True):
                if usage is None and failure is None:
                    # The client went away: the provider goes on to bill the whole answer
                    # (hidden reasoning tokens too), so read on, briefly, for its usage.
                    usage = await _drain_usage(stream)
                await _close(stream)
                self.hits += tuple(h for h in screen.hits() if h not in self.hits)
                if usage is not None:
                    await self.finish(_cost(None, usage, self.model), _usage_metadata(usage, stream=True))
                else:
                    await self.finish_abandoned(chunks, "".join(seen), failure)


DRAIN_SECONDS = 10.0
"""How long an abandoned stream is read on for the usage the provider bills."""


async def _drain_usage(stream: Any) -> Any:
    usage = None
    with anyio.move_on_after(DRAIN_SECONDS):
        try:
            async for chunk in stream:
                if getattr(chunk, "usage", None) is not None and not chunk.choices:
                    usage = chunk.usage
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


ANSWER_TEXT_FIELDS = ("content", "refusal", "reasoning_content")
"""Text fields of a stream delta, screened like its content (a plain answer is screened whole,
every string of its messages, by `guard.response_texts`)."""
PROMPT_FIELDS = ("messages", "tools", "functions", "response_format", "prediction")
"""The request fields a provider bills as prompt (what an abandoned stream is charged for)."""


def delta_texts(chunk: Any) -> list[tuple[int, str, str]]:
    """The text each choice of a stream chunk adds, as (choice, part, text): content, refusal,
    and each tool call's name and arguments."""
    found = []
    for choice in getattr(chunk, "choices", None) or ():
        delta = getattr(choice, "delta", None)
        if delta is None:
            continue
        index = getattr(choice, "index", 0) or 0
        for name in ANSWER_TEXT_FIELDS:
            value = getattr(delta, name, None)
            if isinstance(value, str) and value:
                found.append((index, name, value))
        audio = getattr(delta, "audio", None)
        transcript = audio.get("transcript") if isinstance(audio, dict) else getattr(audio, "transcript", None)
        if isinstance(transcript, str) and transcript:
            found.append((index, "audio", transcript))
        legacy = getattr(delta, "function_call", None)
        for name in ("name", "arguments"):
            value = getattr(legacy, name, None) if legacy is not None else None
            if isinstance(value, str) and value:
                found.append((index, f"function_call:{name}", value))
        for call in getattr(delta, "tool_calls", None) or ():
            function = getattr(call, "function", None)
            for name in ("name", "arguments"):
                value = getattr(function, name, None) if function is not None else None
                if isinstance(value, str) and value:
                    found.append((index, f"tool_call:{getattr(call, 'index', 0)}:{name}", value))
    return found


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
        context = request.scope.get(SCOPE_KEY, EMPTY)
        snapshot = await account_snapshot(request, credential_of(context))
        caller = caller_of(snapshot, context, request.headers.get("x-cockpit-domain"))
        catalog = await proxy.catalog_for(snapshot)
    except ProxyError as exc:
        return exc.response()
    allowed = allowed_for(snapshot, caller)
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "cockpit"} for name in sorted(catalog.models) if name in allowed]
    return JSONResponse({"object": "list", "data": data})
