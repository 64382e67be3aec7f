"""The most a request can cost, known before the upstream is called.

A budget hold is only a guarantee if it is a true upper bound of what the provider can bill for
the request, so the bound counts everything a provider bills:

- **Prompt**: every byte of the request body. Byte-level tokenizers never make more tokens than
  bytes, and every prompt-bearing field (messages and their names, tool calls, `tools` and
  `functions` schemas, `response_format`, `prediction`, …) is inside the body, so the body's
  length bounds them all whatever fields a provider bills. Per message and per request a few
  tokens of chat template are added, and each image part at least `IMAGE_TOKENS` (a small image
  of a large resolution costs more tokens than its bytes).
- **Output**: `n` choices of at most `max_completion_tokens` / `max_tokens` each, plus the
  predicted output (rejected prediction tokens are billed as completion tokens). A request that
  names no limit gets the model's limit (`extra_body.max_tokens`, else `DEFAULT_MAX_OUTPUT_TOKENS`)
  written into the call, so the provider is held to the bound that was reserved.

Values a provider could read differently from us are refused with a 400 rather than guessed at:
`max_tokens: 100000.0` is sent on as the integer 100000 and reserved as such, `max_tokens: 1.5`,
`n: true` or `n: 0` are errors. Limits above `MAX_OUTPUT_TOKENS` and `MAX_CHOICES` are refused
too, so a hold always fits the counters' integer arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cockpit.proxy.errors import ProxyError

MESSAGE_OVERHEAD_TOKENS = 8
"""Chat-template tokens per message (role and separators), on top of its bytes."""
REQUEST_OVERHEAD_TOKENS = 64
"""Template tokens per request (priming of the answer)."""
TOOLS_OVERHEAD_TOKENS = 1_024
"""The system prompt a provider adds when a request carries tools (Anthropic's is ~350 tokens)."""
FETCHED_PARTS = ("file", "input_file", "document")
"""Content parts a provider may fetch itself, billing whatever it finds behind the reference."""
IMAGE_TOKENS = 2_560
"""The least an image part is counted as: providers bill an image by its resolution, up to
about 2,500 tokens today, whatever its size in bytes."""
MAX_CHOICES = 128
"""OpenAI's own limit on `n`."""
MAX_OUTPUT_TOKENS = 1_000_000
"""No model answers more than this in one request; a larger limit is a mistake or an attack."""
OUTPUT_LIMITS = ("max_completion_tokens", "max_tokens")


@dataclass(frozen=True)
class Bound:
    prompt_tokens: int
    """At least the prompt tokens any provider bills for the request."""
    output_tokens: int
    """At least the completion tokens of all choices together."""
    choices: int


def request_bound(body: dict[str, Any], raw_length: int, model_max_output: int) -> Bound:
    """The bound of a Chat Completions request whose body (`raw_length` bytes) is `body`.

    Normalises `body` in place so the upstream is held to the bound: integral floats become
    integers, and a request without an output limit gets the model's."""
    choices = _integer(body, "n", MAX_CHOICES) or 1
    limits = [value for name in OUTPUT_LIMITS if (value := _integer(body, name, MAX_OUTPUT_TOKENS)) is not None]
    if limits:
        per_choice = max(limits)  # providers differ in which one they honour: reserve for the larger
    else:
        per_choice = model_max_output
        body["max_tokens"] = per_choice
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    overhead = REQUEST_OVERHEAD_TOKENS + (TOOLS_OVERHEAD_TOKENS if body.get("tools") or body.get("functions") else 0)
    prompt = raw_length + overhead + MESSAGE_OVERHEAD_TOKENS * len(messages) + IMAGE_TOKENS * _images(messages)
    return Bound(prompt, per_choice * choices + _predicted(body.get("prediction")), choices)


def _integer(body: dict[str, Any], name: str, most: int) -> int | None:
    """The integer value of `name` (None when absent), rewritten as an int in `body`."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = body[name] = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProxyError(400, f"`{name}` must be an integer.", "invalid_type", param=name)
    if not 1 <= value <= most:
        raise ProxyError(400, f"`{name}` must be between 1 and {most:,}; got {value}.", "invalid_value", param=name)
    return value


def _images(messages: list[Any]) -> int:
    """The image parts; refuses parts whose size the gateway cannot see before the call: files
    by reference (a URL or a provider file id: a PDF behind it can be any number of pages) and
    images by a URL other than http(s) or inline data (litellm hands `gs://…` to Gemini as a
    file of any type)."""
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind in FETCHED_PARTS:
                inner = part.get(kind) if isinstance(part.get(kind), dict) else part
                if not inner.get("file_data"):
                    raise ProxyError(400, f"`{kind}` parts must carry their content inline (`file_data`); files by id or URL are not accepted, since their cost cannot be bounded before the call.", "unsupported_content", param="messages")
            if kind in ("image_url", "input_image", "image"):
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                if isinstance(url, str) and not url.startswith(("http://", "https://", "data:")):
                    raise ProxyError(400, "`image_url` must be an http(s) URL or inline `data:`.", "unsupported_content", param="messages")
                count += 1
    return count


def _predicted(prediction: Any) -> int:
    """Bytes of the predicted output: each may come back billed as a completion token."""
    if not isinstance(prediction, dict):
        return 0
    content = prediction.get("content")
    if isinstance(content, str):
        return len(content.encode("utf-8"))
    if isinstance(content, list):
        return sum(len(str(part.get("text", "")).encode("utf-8")) for part in content if isinstance(part, dict))
    return 0


def completions_bound(body: dict[str, Any], raw_length: int, model_max_output: int) -> Bound:
    """The bound of a legacy Completions request. A `prompt` that is a list (of strings or of
    token arrays) is that many prompts, each answered `n` times, and `best_of` candidates are
    generated (and billed) per prompt, of which `n` are returned."""
    choices = _integer(body, "n", MAX_CHOICES) or 1
    best_of = _integer(body, "best_of", MAX_CHOICES) or 1
    per_choice = _integer(body, "max_tokens", MAX_OUTPUT_TOKENS)
    if per_choice is None:
        per_choice = body["max_tokens"] = model_max_output
    prompt = body.get("prompt")
    prompts = len(prompt) if isinstance(prompt, list) and prompt and not all(isinstance(item, int) for item in prompt) else 1
    generated = max(choices, best_of) * prompts
    if generated > MAX_CHOICES:
        raise ProxyError(400, f"A request may ask for at most {MAX_CHOICES} completions in all (prompts × max(n, best_of)); got {generated}.", "invalid_value", param="n")
    return Bound(raw_length + REQUEST_OVERHEAD_TOKENS * prompts, per_choice * generated, choices * prompts)


def embeddings_bound(body: dict[str, Any], raw_length: int, model_max_output: int) -> Bound:
    """Embeddings bill their input only: every byte of the body bounds its tokens (a token id of
    an array input takes at least two bytes of JSON)."""
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) and inputs and not all(isinstance(item, int) for item in inputs) else 1
    return Bound(raw_length + REQUEST_OVERHEAD_TOKENS * count, 0, count)


UNBOUNDED_RESPONSES_FIELDS = {
    "previous_response_id": "it bills the stored conversation it continues as input",
    "conversation": "it bills the stored conversation it continues as input",
    "prompt": "a stored prompt template bills whatever the template holds",
    "background": "a background response is billed after the request has ended",
}
"""Responses API fields whose cost the request body does not show."""
BOUNDED_TOOL_TYPES = frozenset({"function", "custom"})
"""Responses API tools that run on the caller's side; hosted tools (web search, file search, code
interpreter, image generation, computer use, MCP) bill what they fetch or run, unbounded."""


def responses_bound(body: dict[str, Any], raw_length: int, model_max_output: int) -> Bound:
    """The bound of a Responses API request: every byte of the body, the template, each image,
    and `max_output_tokens` (which covers reasoning tokens; the model's limit when absent)."""
    for name, why in UNBOUNDED_RESPONSES_FIELDS.items():
        if body.get(name) not in (None, False, ""):
            raise ProxyError(400, f"`{name}` is not accepted by the gateway: {why}, which no budget hold known before the call can cover. Send the whole input instead.", "unsupported_parameter", param=name)
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    hosted = sorted({str(tool.get("type")) for tool in tools if isinstance(tool, dict) and tool.get("type") not in BOUNDED_TOOL_TYPES})
    if hosted:
        raise ProxyError(400, f"Hosted tools are not accepted by the gateway ({', '.join(hosted)}): their cost cannot be bounded before the call. Use function tools.", "unsupported_parameter", param="tools")
    per_response = _integer(body, "max_output_tokens", MAX_OUTPUT_TOKENS)
    if per_response is None:
        per_response = body["max_output_tokens"] = model_max_output
    given = body.get("input")
    items = [item for item in given if isinstance(item, dict)] if isinstance(given, list) else []
    for item in items:
        for part in item.get("content") if isinstance(item.get("content"), list) else ():
            if isinstance(part, dict) and part.get("type") == "input_image" and not part.get("image_url"):
                raise ProxyError(400, "`input_image` parts must carry an http(s) or `data:` `image_url`; images by file id are not accepted, since their cost cannot be bounded before the call.", "unsupported_content", param="input")
    overhead = REQUEST_OVERHEAD_TOKENS + (TOOLS_OVERHEAD_TOKENS if tools else 0)
    prompt = raw_length + overhead + MESSAGE_OVERHEAD_TOKENS * len(items) + IMAGE_TOKENS * _images(items)
    return Bound(prompt, per_response, 1)


ANTHROPIC_SERVER_TOOLS = ("web_search", "web_fetch", "code_execution", "mcp")
"""Prefixes of Anthropic tool types that run on Anthropic's side and bill what they fetch."""
ANTHROPIC_UNBOUNDED_FIELDS = {
    "mcp_servers": "MCP servers add the tools' results to the input",
    "container": "a code-execution container bills its own use",
}


def messages_bound(body: dict[str, Any], raw_length: int, model_max_output: int) -> Bound:
    """The bound of an Anthropic Messages request: every byte of the body (system, messages,
    tools), the template, each image, and `max_tokens` (the model's limit when absent; it covers
    extended thinking, whose budget must fit in it). Documents by URL or file id and server
    tools are refused: what they bring in is billed as input, unseen before the call."""
    for name, why in ANTHROPIC_UNBOUNDED_FIELDS.items():
        if body.get(name):
            raise ProxyError(400, f"`{name}` is not accepted by the gateway: {why}, which no budget hold known before the call can cover.", "unsupported_parameter", param=name)
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    hosted = sorted({str(tool["type"]) for tool in tools if isinstance(tool, dict) and str(tool.get("type") or "").startswith(ANTHROPIC_SERVER_TOOLS)})
    if hosted:
        raise ProxyError(400, f"Server tools are not accepted by the gateway ({', '.join(hosted)}): their cost cannot be bounded before the call. Use client tools.", "unsupported_parameter", param="tools")
    per_response = _integer(body, "max_tokens", MAX_OUTPUT_TOKENS)
    if per_response is None:
        per_response = body["max_tokens"] = model_max_output
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    images = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, dict):
                continue
            source = part.get("source") if isinstance(part.get("source"), dict) else {}
            if part.get("type") == "document" and source.get("type") not in ("base64", "text", "content"):
                raise ProxyError(400, "`document` blocks must carry their content (`base64`, `text` or `content` sources); documents by URL or file id are not accepted, since their cost cannot be bounded before the call.", "unsupported_content", param="messages")
            if part.get("type") == "image":
                images += 1
    overhead = REQUEST_OVERHEAD_TOKENS + (TOOLS_OVERHEAD_TOKENS if tools else 0)
    prompt = raw_length + overhead + MESSAGE_OVERHEAD_TOKENS * len(messages) + IMAGE_TOKENS * images
    return Bound(prompt, per_response, 1)
