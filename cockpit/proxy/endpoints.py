"""The APIs the gateway serves, each declared once: what a request must hold, which of its
fields reach the model (and so are screened), what it can cost at most, and where the answer
says what it used.

Every endpoint goes through the same governed path (`cockpit.proxy.routes`); what differs
between them is only this declaration. An answer, plain or streamed, is handled as JSON data
(dicts), whether it came from a wire-compatible upstream as bytes or from litellm as objects,
so screening and metering are written once per endpoint, not once per upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import orjson

from cockpit.proxy.bounds import Bound, completions_bound, embeddings_bound, messages_bound, request_bound, responses_bound
from cockpit.proxy.errors import ProxyError
from cockpit.proxy.guard import ANTHROPIC_MESSAGES, CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, TextFields, message_texts, texts_of


@dataclass(frozen=True)
class Usage:
    """What a call used, in tokens, as the provider bills it."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    """Part of `input_tokens` read from the provider's prompt cache."""


ROUTING_PARAMETERS = frozenset({
    "api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "extra_headers", "headers",
    "extra_body", "extra_query", "mock_response", "mock_tool_calls", "mock_timeout", "timeout", "num_retries",
    "max_retries", "fallbacks", "context_window_fallback_dict", "model_list", "deployment_id", "organization",
    "azure_ad_token", "azure_ad_token_provider", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
    "aws_region_name", "aws_profile_name", "vertex_project", "vertex_location", "vertex_credentials",
    "input_cost_per_token", "output_cost_per_token", "input_cost_per_second", "output_cost_per_second",
    "litellm_logging_obj", "litellm_call_id", "litellm_metadata", "logger_fn", "client", "proxy_server_request",
    "cache", "caching", "no-log", "hf_model_name", "model_info", "api_type", "region_name",
})
"""Request fields that would send the call elsewhere, with other credentials, at other prices,
or past the gateway's logging: litellm takes all of them from the request's keywords. Refused on
every endpoint and every upstream, named in the error."""
UNBOUNDED_PARAMETERS = frozenset({"web_search_options"})
"""Fields whose cost no bound known before the call covers (the provider bills the searches and
the pages it reads as input)."""
ACCEPTED_EVERYWHERE = frozenset({"metadata", "store", "user", "prompt_cache_key", "safety_identifier", "service_tier"})
"""Bookkeeping fields of OpenAI's APIs: passed on, and never a reason to refuse a request."""


@dataclass(frozen=True)
class Endpoint:
    """One API of the gateway."""

    name: str
    """As the ledger records it, e.g. `chat.completions`."""
    path: str
    """The gateway's path (also served without the `/v1` prefix)."""
    upstream_path: str
    """Appended to an OpenAI-compatible upstream's base URL (which ends in `/v1`)."""
    required: str
    """The field a request cannot go without (besides `model`)."""
    texts: TextFields
    """The fields whose text reaches the model: what guardrails screen."""
    parameters: frozenset[str]
    """The API's own fields, besides `model`, `stream`, `stream_options` and `required`: what
    litellm is given when it translates (a wire-compatible upstream is sent the body as it came)."""
    bound: Callable[[dict[str, Any], int, int], Bound]
    usage: Callable[[Mapping[str, Any]], Usage | None]
    """From an answer, or from a stream event (None when it carries no usage)."""
    answer_texts: Callable[[Mapping[str, Any]], list[str]]
    """The texts of a plain answer that guardrails screen."""
    delta_texts: Callable[[Mapping[str, Any]], list[tuple[int, str, str]]] | None = None
    """The text a stream event adds, as (choice, part, text); None: the API does not stream."""
    prompt_fields: tuple[str, ...] = ()
    """The fields a provider bills as prompt: what an abandoned stream is charged for."""
    translate: str = "acompletion"
    """The litellm function that calls an upstream of another API."""
    asks_usage: bool = True
    """Streams carry usage only when asked (`stream_options.include_usage`): the gateway always
    asks, and hides the usage-only last chunk from a client that did not."""
    final_events: frozenset[str] = frozenset()
    """For APIs whose streams name their events and end without `[DONE]`: the events that end
    a complete stream (a stream that stops before one of them was broken off)."""
    wire: str = "openai"
    """The API family it speaks: an upstream of the same family is called directly, and
    errors are answered in its shape."""
    opening_usage: Callable[[Mapping[str, Any]], Usage | None] | None = None
    """For streams that state the input's usage in their first event and the output's in a
    later one (Anthropic's `message_start`, then `message_delta`)."""

    def error_body(self, error: ProxyError) -> dict[str, Any]:
        """An error in the endpoint's API's own shape, so its SDK shows it as its own."""
        if self.wire == "anthropic":
            return {"type": "error", "error": {"type": ANTHROPIC_ERROR_TYPES.get(error.status, "api_error"), "message": error.message}}
        return error.body()

    @property
    def named_events(self) -> bool:
        return bool(self.final_events)

    @property
    def streams(self) -> bool:
        return self.delta_texts is not None

    def parse(self, raw: bytes) -> dict[str, Any]:
        """The request body, checked: 400 for what the gateway cannot serve or must not pass on."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProxyError(400, "The request body is not valid JSON.", "invalid_json") from None
        if not isinstance(body, dict):
            raise ProxyError(400, "The request body must be a JSON object.", "invalid_json")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise ProxyError(400, "`model` is required: the name of a model of the catalog.", "missing_model", param="model")
        if body.get(self.required) in (None, "", []):
            raise ProxyError(400, f"`{self.required}` is required.", f"invalid_{self.required}", param=self.required)
        refused = sorted(key for key in body if key in ROUTING_PARAMETERS)
        if refused:
            raise ProxyError(400, f"Request argument not accepted by the gateway: {', '.join(refused)} (the gateway routes and authenticates every call itself).", "forbidden_parameter", param=refused[0])
        unbounded = sorted(key for key in body if key in UNBOUNDED_PARAMETERS)
        if unbounded:
            raise ProxyError(400, f"Request argument not accepted by the gateway: {', '.join(unbounded)} (its cost cannot be bounded before the call, so no budget could hold it).", "unsupported_parameter", param=unbounded[0])
        if self.streams is False and body.get("stream"):
            raise ProxyError(400, f"`stream` is not supported by {self.path}.", "invalid_stream", param="stream")
        return body

    def unknown(self, body: Mapping[str, Any]) -> list[str]:
        """Fields litellm would not know as this API's: refused when it translates (it would take
        them as its own keywords)."""
        known = self.parameters | ACCEPTED_EVERYWHERE | {"model", "stream", "stream_options", self.required}
        return sorted(key for key in body if key not in known)


USAGE_CEILING = 1 << 40
"""The most tokens one figure of an answer's usage is taken to say (no call comes near a
trillion): what an upstream reports is the input of a charge, and a broken or hostile one
must not make it negative (a refund) or too large to store."""


def _int(value: Any) -> int:
    """A token count from an answer's usage: a whole number from 0 to `USAGE_CEILING`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN
        return 0
    return int(min(max(value, 0), USAGE_CEILING))


def openai_usage(data: Mapping[str, Any]) -> Usage | None:
    """`usage` of a Chat Completions, Completions or Embeddings answer (or a stream's last chunk)."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")), cached)


def responses_usage(data: Mapping[str, Any]) -> Usage | None:
    """`usage` of a Responses API answer, or of the `response` a stream's last event carries."""
    inner = data.get("response")
    usage = (inner if isinstance(inner, dict) else data).get("usage")
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")), cached)


def responses_answer_texts(answer: Mapping[str, Any]) -> list[str]:
    """The texts of a Responses API answer's output items: message text and refusals, function
    calls' names and arguments, reasoning summaries."""
    found: list[str] = []
    output = answer.get("output")
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        for name in ("name", "arguments", "input"):
            if isinstance(item.get(name), str):
                found.append(item[name])
        for key in ("content", "summary"):
            for part in item.get(key) if isinstance(item.get(key), list) else ():
                if isinstance(part, dict):
                    found += [part[name] for name in ("text", "refusal") if isinstance(part.get(name), str)]
    return found


RESPONSES_DELTAS = frozenset({
    "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta", "response.reasoning_summary_text.delta", "response.reasoning_text.delta",
})


def responses_delta_texts(event: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    """The text a Responses API stream event adds, per output item."""
    delta = event.get("delta")
    if event.get("type") in RESPONSES_DELTAS and isinstance(delta, str) and delta:
        return [(_int(event.get("output_index")), f"{event['type']}:{_int(event.get('content_index'))}", delta)]
    return []


ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 502: "api_error", 503: "overloaded_error", 504: "api_error",
}


def _anthropic_usage_of(usage: Any) -> Usage | None:
    """Anthropic reports input read from and written to the prompt cache apart from
    `input_tokens`; all three are billed as input."""
    if not isinstance(usage, dict):
        return None
    read = _int(usage.get("cache_read_input_tokens"))
    total = _int(usage.get("input_tokens")) + _int(usage.get("cache_creation_input_tokens")) + read
    return Usage(total, _int(usage.get("output_tokens")), read)


def anthropic_usage(data: Mapping[str, Any]) -> Usage | None:
    """The usage of a Messages answer, or of a stream's `message_delta` (cumulative)."""
    if data.get("type") not in ("message", "message_delta"):
        return None
    return _anthropic_usage_of(data.get("usage"))


def anthropic_opening_usage(data: Mapping[str, Any]) -> Usage | None:
    """The input usage a stream's `message_start` states."""
    message = data.get("message") if data.get("type") == "message_start" else None
    return _anthropic_usage_of(message.get("usage")) if isinstance(message, dict) else None


def anthropic_answer_texts(answer: Mapping[str, Any]) -> list[str]:
    """The texts of a Messages answer: text and thinking blocks, tool uses' names and input."""
    found: list[str] = []
    content = answer.get("content")
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        found += [block[name] for name in ("text", "thinking", "name") if isinstance(block.get(name), str)]
        if "input" in block:
            found += texts_of({"input": block["input"]}, TextFields(values=("input",)))
    return found


def anthropic_delta_texts(event: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    """The text a Messages stream event adds, per content block."""
    index = _int(event.get("index"))
    if event.get("type") == "content_block_delta" and isinstance(event.get("delta"), dict):
        delta = event["delta"]
        return [(index, name, delta[name]) for name in ("text", "partial_json", "thinking") if isinstance(delta.get(name), str) and delta[name]]
    if event.get("type") == "content_block_start" and isinstance(event.get("content_block"), dict):
        block = event["content_block"]
        return [(index, name, block[name]) for name in ("text", "name") if isinstance(block.get(name), str) and block[name]]
    return []


def chat_answer_texts(answer: Mapping[str, Any]) -> list[str]:
    """Every string of the answer's messages (content, refusal, reasoning, tool calls, audio)."""
    choices = answer.get("choices")
    messages = [choice.get("message") for choice in choices if isinstance(choice, dict)] if isinstance(choices, list) else []
    return message_texts([message for message in messages if isinstance(message, dict)])


CHAT_DELTA_FIELDS = ("content", "refusal", "reasoning_content")


def chat_delta_texts(event: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    """The text each choice of a chat stream chunk adds: content, refusal, reasoning, the audio
    transcript, and each tool call's (and legacy function call's) name and arguments."""
    found = []
    for choice in _choices(event):
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        index = _int(choice.get("index"))
        for name in CHAT_DELTA_FIELDS:
            value = delta.get(name)
            if isinstance(value, str) and value:
                found.append((index, name, value))
        audio = delta.get("audio")
        transcript = audio.get("transcript") if isinstance(audio, dict) else None
        if isinstance(transcript, str) and transcript:
            found.append((index, "audio", transcript))
        legacy = delta.get("function_call")
        for name in ("name", "arguments"):
            value = legacy.get(name) if isinstance(legacy, dict) else None
            if isinstance(value, str) and value:
                found.append((index, f"function_call:{name}", value))
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            for name in ("name", "arguments"):
                value = function.get(name) if isinstance(function, dict) else None
                if isinstance(value, str) and value:
                    found.append((index, f"tool_call:{_int(call.get('index'))}:{name}", value))
    return found


def completion_answer_texts(answer: Mapping[str, Any]) -> list[str]:
    return [choice["text"] for choice in _choices(answer) if isinstance(choice.get("text"), str)]


def completion_delta_texts(event: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    return [(_int(choice.get("index")), "text", choice["text"]) for choice in _choices(event) if isinstance(choice.get("text"), str) and choice["text"]]


def _choices(data: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    choices = data.get("choices")
    return [choice for choice in choices if isinstance(choice, dict)] if isinstance(choices, list) else []


def no_texts(answer: Mapping[str, Any]) -> list[str]:
    """An embeddings answer holds vectors, no text."""
    return []


CHAT_PARAMETERS = frozenset({
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "max_tokens", "max_completion_tokens", "n",
    "presence_penalty", "response_format", "seed", "stop", "temperature", "top_p", "tools", "tool_choice",
    "parallel_tool_calls", "functions", "function_call", "modalities", "audio", "prediction",
    "reasoning_effort", "verbosity",
})

CHAT_COMPLETIONS = Endpoint(
    name="chat.completions",
    path="/v1/chat/completions",
    upstream_path="/chat/completions",
    required="messages",
    texts=CHAT,
    parameters=CHAT_PARAMETERS,
    bound=request_bound,
    usage=openai_usage,
    answer_texts=chat_answer_texts,
    delta_texts=chat_delta_texts,
    prompt_fields=("messages", "tools", "functions", "response_format", "prediction"),
)
COMPLETIONS_ENDPOINT = Endpoint(
    name="completions",
    path="/v1/completions",
    upstream_path="/completions",
    required="prompt",
    texts=COMPLETIONS,
    parameters=frozenset({
        "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs", "max_tokens", "n", "presence_penalty",
        "seed", "stop", "suffix", "temperature", "top_p",
    }),
    bound=completions_bound,
    usage=openai_usage,
    answer_texts=completion_answer_texts,
    delta_texts=completion_delta_texts,
    prompt_fields=("prompt", "suffix"),
    translate="atext_completion",
)
EMBEDDINGS_ENDPOINT = Endpoint(
    name="embeddings",
    path="/v1/embeddings",
    upstream_path="/embeddings",
    required="input",
    texts=EMBEDDINGS,
    parameters=frozenset({"dimensions", "encoding_format"}),
    bound=embeddings_bound,
    usage=openai_usage,
    answer_texts=no_texts,
    prompt_fields=("input",),
    translate="aembedding",
)

RESPONSES_ENDPOINT = Endpoint(
    name="responses",
    path="/v1/responses",
    upstream_path="/responses",
    required="input",
    texts=RESPONSES,
    parameters=frozenset({
        "instructions", "max_output_tokens", "max_tool_calls", "parallel_tool_calls", "reasoning", "temperature",
        "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "include",
    }),
    bound=responses_bound,
    usage=responses_usage,
    answer_texts=responses_answer_texts,
    delta_texts=responses_delta_texts,
    prompt_fields=("instructions", "input", "tools", "text"),
    translate="aresponses",
    asks_usage=False,
    final_events=frozenset({"response.completed", "response.incomplete", "response.failed"}),
)

MESSAGES_ENDPOINT = Endpoint(
    name="messages",
    path="/v1/messages",
    upstream_path="/messages",
    required="messages",
    texts=ANTHROPIC_MESSAGES,
    parameters=frozenset({
        "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking",
        "service_tier",
    }),
    bound=messages_bound,
    usage=anthropic_usage,
    answer_texts=anthropic_answer_texts,
    delta_texts=anthropic_delta_texts,
    prompt_fields=("system", "messages", "tools"),
    translate="anthropic_messages",
    asks_usage=False,
    final_events=frozenset({"message_stop"}),
    wire="anthropic",
    opening_usage=anthropic_opening_usage,
)

ENDPOINTS = (CHAT_COMPLETIONS, COMPLETIONS_ENDPOINT, EMBEDDINGS_ENDPOINT, RESPONSES_ENDPOINT, MESSAGES_ENDPOINT)
