"""The one module that imports litellm: offline settings, the deployments, translated calls,
warm-up.

litellm fetches its model cost map from GitHub at import time unless told not to, and a
black-holed endpoint stalls the import by seconds, so `LITELLM_OFFLINE_MODE` is set before the
import. Charges are computed from each answer's usage at our `Model` rows' prices (every model
has one; validation refuses a model without); the prices are also given to litellm per
deployment so its own logs agree. Importing litellm costs ~2 s and ~190 MiB, so only `cockpit
serve` imports this module, never `plan` or `apply`.

litellm is the translator: it calls upstreams whose API differs from the endpoint's (the
direct path in `cockpit.proxy.upstream` serves the rest). Each attempt of a call goes to one
deployment that `cockpit.proxy.routing` chose, so calls go to litellm's function for the
endpoint with that deployment's parameters rather than through litellm's Router: the Router
would only add its layers (a quarter of litellm's CPU per call, measured), retries that hide
failures, and cooldowns that turn one upstream error into "no deployments available" for
everyone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from cockpit.proxy.upstream import sse_events

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402  (the environment above must be set first)

litellm.telemetry = False
litellm.suppress_debug_info = True
# Never drop parameters: on an upstream 422 litellm would drop what the provider named and call it
# again (a hidden second request, maybe without the `max_tokens` the budget hold was sized for),
# and after two 422s answer None. A parameter a provider refuses is the caller's 400.
litellm.drop_params = False
# /v1/messages for an OpenAI model goes to the upstream's chat completions, not its Responses API:
# litellm's Responses translation asks for at least 16 output tokens whatever `max_tokens` said
# (more than the budget hold was sized for) and its stream imports litellm's proxy server.
litellm.use_chat_completions_url_for_anthropic_messages = True
for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
    logging.getLogger(_name).setLevel(logging.ERROR)

MILLION = Decimal(1_000_000)
DEFAULT_MAX_OUTPUT_TOKENS = 4096
"""What a request without `max_tokens` is assumed to produce at most, when the model's
`extra_body` names no `max_tokens` of its own (the reservation's upper bound)."""


@dataclass(frozen=True)
class CatalogModel:
    """What the proxy needs of one `Model` row."""

    name: str
    upstream: str
    input_per_million: Decimal
    output_per_million: Decimal
    max_output_tokens: int
    cached_input_per_million: Decimal | None = None
    """None: cached input costs what other input costs."""

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0) -> Decimal:
        """The raw cost of a call, in the prices' currency. `cached_prompt_tokens` are part of
        `prompt_tokens`, charged at the cached price where the model declares one."""
        cached = min(cached_prompt_tokens, prompt_tokens) if self.cached_input_per_million is not None else 0
        return (
            (prompt_tokens - cached) * self.input_per_million
            + cached * (self.cached_input_per_million or 0)
            + completion_tokens * self.output_per_million
        ) / MILLION

    def ceiling(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """The most `cost` can be for at most these tokens, whichever of them are cached."""
        dearest = max(self.input_per_million, self.cached_input_per_million or 0)
        return (prompt_tokens * dearest + completion_tokens * self.output_per_million) / MILLION


def catalog_model(name: str, litellm_params: Mapping[str, Any], input_per_million: Any, output_per_million: Any, cached_input_per_million: Any = None) -> CatalogModel:
    extra = litellm_params.get("extra_body") or {}
    max_tokens = extra.get("max_tokens") if isinstance(extra, dict) else None
    return CatalogModel(
        name,
        str(litellm_params.get("model") or name),
        Decimal(str(input_per_million or 0)),
        Decimal(str(output_per_million or 0)),
        int(max_tokens) if isinstance(max_tokens, int) and max_tokens > 0 else DEFAULT_MAX_OUTPUT_TOKENS,
        Decimal(str(cached_input_per_million)) if cached_input_per_million is not None else None,
    )


Deployment = dict[str, Any]
"""The keyword arguments of `litellm.acompletion` that route to one model's upstream."""


def deployment(model: CatalogModel, params: Mapping[str, Any], api_key: str | None) -> Deployment:
    """A model's upstream call parameters (as stored, with its decrypted key and its prices, so
    litellm computes `response_cost` for any model)."""
    found: Deployment = {k: v for k, v in params.items() if k not in ("api_key", "extra_body") and v is not None}
    extra = {k: v for k, v in (params.get("extra_body") or {}).items() if k not in ("max_tokens", "max_completion_tokens")}
    if extra:  # the model's max_tokens is its default limit, sent in the body (would override the caller's)
        found["extra_body"] = extra
    if api_key:
        found["api_key"] = api_key
    found["num_retries"] = 0  # the caller retries, knowing what it pays for; a hidden retry is
    found["max_retries"] = 0  # time the caller's budget hold and our worker are tied up
    found["input_cost_per_token"] = float(model.input_per_million / MILLION)
    found["output_cost_per_token"] = float(model.output_per_million / MILLION)
    return found


async def complete(target: Deployment, **request: Any) -> Any:
    """One upstream call: a ModelResponse, or a stream of chunks when `stream=True`."""
    return await litellm.acompletion(**target, **request)


class EmptyAnswer(Exception):
    """litellm gave back nothing for a call (it does for some upstream errors, e.g. a 422)."""


async def translated_answer(function: str, target: Deployment, params: Mapping[str, Any]) -> dict[str, Any]:
    """One call through litellm's `function` (`acompletion`, `atext_completion`, `aembedding`),
    its answer as JSON data."""
    response = await getattr(litellm, function)(**target, **params)
    if response is None:
        raise EmptyAnswer("the upstream returned no answer")
    answer = dict(response) if isinstance(response, dict) else response.model_dump(mode="json", exclude_none=True)
    if isinstance(answer.get("usage"), dict):
        answer["usage"].pop("cost", None)
    return answer


async def translated_stream(endpoint: Any, target: Deployment, params: Mapping[str, Any]) -> "TranslatedStream":
    """A streamed call through litellm's function for `endpoint`, asking for usage where the API
    gives it only when asked."""
    asked = {"stream_options": {"include_usage": True}} if endpoint.asks_usage else {}
    stream = await getattr(litellm, endpoint.translate)(**target, **params, stream=True, **asked)
    if stream is None:
        raise EmptyAnswer("the upstream returned no stream")
    return TranslatedStream(stream, endpoint.final_events if endpoint.wire == "anthropic" else None)


class TranslatedStream:
    """litellm's stream of chunks as (event name, data) pairs, as a direct upstream's."""

    def __init__(self, stream: Any, sse_final_events: frozenset[str] | None = None) -> None:
        self.stream = stream
        # One reading of the stream, however often iterated. litellm's Messages streams are
        # server-sent events as bytes already: they are parsed as a direct upstream's.
        self._iterator = self._events() if sse_final_events is None else sse_events(stream, sse_final_events)

    def __aiter__(self) -> Any:
        return self._iterator

    async def _events(self) -> Any:
        async for chunk in self.stream:
            data = chunk.model_dump(mode="json", exclude_none=True) if hasattr(chunk, "model_dump") else dict(chunk)
            if isinstance(data.get("usage"), dict):
                data["usage"].pop("cost", None)
            yield None, data

    async def aclose(self) -> None:
        await self._iterator.aclose()
        closing = getattr(self.stream, "aclose", None)
        if closing is not None:
            await closing()


async def warm_up() -> None:
    """Run litellm's lazy imports (the first real call costs ~100–250 ms otherwise) without
    reaching any upstream: a mocked call, plain and streamed."""
    model = CatalogModel("warm-up", "openai/warm-up", Decimal(1), Decimal(1), 16)
    target = deployment(model, {"model": "openai/warm-up", "api_base": "http://127.0.0.1:9/v1"}, "warm-up")
    messages = [{"role": "user", "content": "warm up"}]
    await complete(target, messages=messages, mock_response="ok")
    stream = await complete(target, messages=messages, mock_response="ok", stream=True, stream_options={"include_usage": True})
    async for _chunk in stream:
        pass



def count_tokens(model: CatalogModel, text: str) -> int:
    """The tokens of `text` by litellm's tokenizer for the model (tiktoken's, offline): what an
    abandoned stream is charged for its prompt and for the text it relayed. CPU-bound: call it
    off the event loop."""
    if not text:
        return 0
    return int(litellm.token_counter(model=model.upstream, text=text))
