"""A fake OpenAI-compatible upstream: the Chat Completions API on a loopback port.

It stands in for a real LLM provider, so the proxy and litellm run their real HTTP and SSE code,
and it answers deterministically, so tests can compute the tokens and the cost they expect:

- `POST /v1/chat/completions` needs `Authorization: Bearer <api_key>` (401 otherwise) and a JSON
  object with `model` and `messages` (400 otherwise), errors in OpenAI's shape
  `{"error": {"message", "type", "param", "code"}}`.
- The answer is `reply`, or, when the last user message starts with "echo:", the rest of that
  message, stripped. Either way it is sent as its words joined by single spaces, so the streamed
  and the non-streamed answers are the same text.
- `prompt_tokens` is the number of whitespace-separated words in all the messages' text
  (string contents and `{"type": "text"}` parts) plus, as a provider bills them as prompt, the
  words of the JSON of `tools`, `functions` and `response_format`; `completion_tokens` the
  number of words answered, times `n` (each of the `n` choices gets the same answer). A
  `max_tokens` or `max_completion_tokens` smaller than the answer cuts it to that many words,
  with `finish_reason` "length" instead of "stop" — unless `honour_max_tokens` is False, a
  provider that bills past the limit it was given.
- `"stream": true` answers `chat.completion.chunk` events: the role, one per word, the
  finish_reason (each for every choice), the usage (only with `stream_options.include_usage`),
  then `data: [DONE]`.
- `POST /v1/completions` (legacy): `prompt` a string or a list of strings, answered like a chat
  request whose one user message is the prompt; `prompt_tokens` its words (over every prompt),
  one choice per prompt × `n`, each the same text; streamed as `text_completion` events.
- `POST /v1/embeddings`: `input` a string or a list of strings; one vector of `dimensions`
  (default 8) floats per input, derived from the input's length; `prompt_tokens` its words.
- `POST /v1/responses`: `input` a string or a list of messages (string contents or
  `input_text` parts), answered like the same chat; `max_output_tokens` cuts the answer
  (status "incomplete"); `instructions` count as prompt words. Streamed as the Responses API's
  named events, `response.created` … `response.output_text.delta` (one per word) …
  `response.completed` (with usage), and no `[DONE]`.
- `GET /v1/models` lists `models`. Any model name is accepted by every endpoint.

    with FakeOpenAI(reply="Hi there") as fake:       # or: fake = serve_openai(); fake.stop()
        litellm_params = {"model": "openai/fake-model", "api_base": fake.url,  # .../v1
                          "api_key": fake.api_key}
        fake.fail_next(429, count=2)       # the next 2 chat calls answer 429 (Retry-After: 1)
        fake.cut_stream_after(3)           # the next streamed answer dies after 3 events
        fake.delay = 0.5                   # answer every request half a second late
        fake.chunk_delay = 0.1             # and stream its events a tenth of a second apart
        fake.honour_max_tokens = False     # answer (and bill) the whole reply regardless
        fake.requests; fake.reset()        # what it received (body + Authorization); forget it

Benchmarks run the same app under uvicorn (httptools, uvloop, no access log, no recording):

    python tests/fakes/openai.py --port 8900 [--reply TEXT] [--api-key KEY] [--model ID ...]
    PYTHONPATH=tests python -m fakes.openai --port 0      # prints the base URL, .../v1
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import LoopbackServer, Message, Scope

DEFAULT_API_KEY = "sk-fake-upstream"
DEFAULT_REPLY = "Hello from the fake upstream."
DEFAULT_MODELS = ("fake-model", "gpt-4o-mini")
HOST = "127.0.0.1"
MODELS_CREATED = 1_700_000_000  # a fixed timestamp: the list is the same on every run

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
ERROR_MESSAGES = {
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
    504: "Gateway timeout.",
}
ERROR_CODES = {429: "rate_limit_exceeded"}

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings", "/v1/responses": "responses"}
"""The POST paths the fake serves, and which API each is."""
JSON_HEADERS = [(b"content-type", b"application/json")]
SCHEMA_FIELDS = ("tools", "functions", "response_format")
"""Request fields a provider bills as prompt tokens besides the messages."""
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
DONE = b"data: [DONE]\n\n"
USAGE_DETAILS = (
    '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    '"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}'
)

_dumps = json.dumps


class StreamCut(Exception):
    """Raised by the app to drop a streamed answer: the loopback server and uvicorn both close
    the connection without finishing the body, which is what a client sees when a provider dies
    mid-stream (uvicorn also logs it as an application error)."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion call the fake received (whatever it answered)."""

    body: Any  # the parsed JSON body, None when it was not JSON
    authorization: str | None  # the header as sent, "Bearer ..."


@dataclass(frozen=True)
class Answer:
    """What a valid request gets: the text (already cut to max tokens) and the token counts."""

    text: str
    words: list[str]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    choices: int = 1


class OpenAIError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = _dumps(
            {
                "error": {
                    "message": message,
                    "type": type_ or ERROR_TYPES.get(status, "server_error"),
                    "param": param,
                    "code": code,
                }
            }
        ).encode()
        self.headers = headers or []


def text_of(content: Any) -> str:
    """A message content's text: a string, or the `text` parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return " ".join(text for text in texts if isinstance(text, str))
    return ""


def count_words(messages: list[Any]) -> int:
    """The fake's prompt tokens: whitespace-separated words over every message's text."""
    return sum(len(text_of(m.get("content")).split()) for m in messages if isinstance(m, dict))


class FakeOpenAI:
    """The fake provider: an ASGI app (`app`) with state, served by a `LoopbackServer`."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        reply: str = DEFAULT_REPLY,
        models: Iterable[str] = DEFAULT_MODELS,
        delay: float = 0.0,
        record: bool = True,
    ) -> None:
        self.api_key = api_key
        self.reply = reply
        self.models = list(models)
        self.delay = delay
        self.chunk_delay = 0.0
        """Seconds between the events of a streamed chat answer (a slow model)."""
        self.record = record  # benchmarks turn it off: the list would grow without bound
        self.honour_max_tokens = True
        self._lock = threading.Lock()
        self._requests: list[ChatRequest] = []
        self._failures: deque[tuple[int, float, str | None]] = deque()
        self._cuts: deque[int] = deque()
        self._ids = itertools.count(1)
        self._server: LoopbackServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def server(self) -> LoopbackServer:
        if self._server is None:
            raise RuntimeError("FakeOpenAI has not been started")
        return self._server

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT, without the /v1."""
        return self.server.url

    @property
    def url(self) -> str:
        """The base URL clients take as `api_base` / `base_url`: http://127.0.0.1:PORT/v1."""
        return f"{self.server.url}/v1"

    def start(self) -> FakeOpenAI:
        """Serve (again); after `stop()` the same port is reused, so clients find it back."""
        if self._server is None:
            # Imported here so that running this file as a script needs no package around it.
            from .server import serve_asgi

            self._server = serve_asgi(self.app)
        else:
            self._server.start()
        return self

    def stop(self) -> None:
        """Go down: new connections are refused and open ones are cut."""
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- switches and inspection -------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1, *, retry_after: float = 1, message: str | None = None) -> None:
        """Answer the next `count` chat calls with `status` in OpenAI's error shape, before
        looking at the key or the body (with `message` as the error's text, if given; providers
        quote parts of the request back, keys included). A 429 carries `Retry-After` (seconds, rounded up) and
        `retry-after-ms`; litellm's Router (2 retries by default) waits that long plus jitter."""
        with self._lock:
            self._failures.extend([(status, retry_after, message)] * count)

    def cut_stream_after(self, n_chunks: int, count: int = 1) -> None:
        """The next `count` streamed answers send `n_chunks` events, then the connection is
        dropped: no `[DONE]`, no end of the chunked body. Non-streamed calls are not affected."""
        with self._lock:
            self._cuts.extend([n_chunks] * count)

    @property
    def requests(self) -> list[ChatRequest]:
        """Every chat completion call received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget the requests, the pending failures and cuts, and the delay."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._cuts.clear()
            self.delay = 0.0
            self.chunk_delay = 0.0
            self.honour_max_tokens = True

    def answer(self, body: dict[str, Any]) -> Answer:
        """What the fake answers to a valid chat request body; tests can ask it for the tokens
        and the text they should expect."""
        messages = body["messages"]
        text = self.reply
        last_user = next(
            (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"),
            None,
        )
        if last_user is not None:
            said = text_of(last_user.get("content"))
            if said.startswith("echo:"):
                text = said[len("echo:") :].strip()
        words = text.split()
        finish_reason = "stop"
        limits = [
            body[name]
            for name in ("max_tokens", "max_completion_tokens")
            if body.get(name) is not None
        ]
        if limits and min(limits) < len(words) and self.honour_max_tokens:
            words = words[: min(limits)]
            finish_reason = "length"
        choices = body.get("n") if isinstance(body.get("n"), int) and not isinstance(body.get("n"), bool) else 1
        schemas = sum(len(_dumps(body[name]).split()) for name in SCHEMA_FIELDS if body.get(name) is not None)
        return Answer(" ".join(words), words, finish_reason, count_words(messages) + schemas, len(words) * choices, choices)

    def answer_completion(self, body: dict[str, Any]) -> Answer:
        """What a legacy completions body gets: each prompt answered as a chat of one message."""
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        one = self.answer({**body, "messages": [{"role": "user", "content": prompts[0]}]})
        prompt_tokens = sum(len(str(prompt).split()) for prompt in prompts)
        choices = one.choices * len(prompts)
        return Answer(one.text, one.words, one.finish_reason, prompt_tokens, len(one.words) * choices, choices)

    def answer_response(self, body: dict[str, Any]) -> Answer:
        """What a Responses API body gets: its input answered as the same chat would be."""
        given = body["input"]
        messages = [{"role": "user", "content": given}] if isinstance(given, str) else [
            {"role": m.get("role", "user"), "content": [{"type": "text", "text": p.get("text")} for p in m["content"] if isinstance(p, dict)] if isinstance(m.get("content"), list) else m.get("content")}
            for m in given if isinstance(m, dict)
        ]
        one = self.answer({"messages": messages, "max_tokens": body.get("max_output_tokens")})
        instructions = len(body["instructions"].split()) if isinstance(body.get("instructions"), str) else 0
        return Answer(one.text, one.words, one.finish_reason, one.prompt_tokens + instructions, one.completion_tokens, 1)

    # -- the ASGI app ------------------------------------------------------------------------

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        if path in ENDPOINTS and method == "POST":
            await self._chat(scope, body, send, ENDPOINTS[path])
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            if path == "/v1/models" or path.startswith("/v1/models/"):
                if method != "GET":
                    raise OpenAIError(405, f"Method not allowed ({method} {path})")
                self._authorise(_authorization(scope))
                payload = self._models(path[len("/v1/models/") :] if path != "/v1/models" else None)
                await _send_json(send, 200, payload)
            elif path in ENDPOINTS:
                raise OpenAIError(405, f"Method not allowed ({method} {path})")
            else:
                raise OpenAIError(404, f"Invalid URL ({method} {path})")
        except OpenAIError as error:
            await _send_json(send, error.status, error.body, error.headers)

    async def _chat(self, scope: Scope, raw: bytes, send: Any, endpoint: str = "chat") -> None:
        authorization = _authorization(scope)
        try:
            body: Any = json.loads(raw)
        except ValueError:  # includes UnicodeDecodeError
            body = None
        if self.record:  # on arrival, so a test sees it while the answer is delayed or cut
            with self._lock:
                self._requests.append(ChatRequest(body, authorization))
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            with self._lock:
                failure = self._failures.popleft() if self._failures else None
            if failure is not None:
                raise _injected(*failure)
            self._authorise(authorization)
            if endpoint == "embeddings":
                await _send_json(send, 200, _embeddings(_validated_embeddings(body)))
                return
            if endpoint == "responses":
                answer = self.answer_response(_validated_response(body))
                response_id = f"resp_fake{next(self._ids):012d}"
                if body.get("stream") is True:
                    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                    for event in _response_events(response_id, int(time.time()), body, answer):
                        await send({"type": "http.response.body", "body": event, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                else:
                    await _send_json(send, 200, _dumps(_response_object(response_id, int(time.time()), body, answer, "completed")).encode())
                return
            if endpoint == "completions":
                answer = self.answer_completion(_validated_completion(body))
            else:
                answer = self.answer(_validated(body))
            model = body["model"]
            created = int(time.time())
            completion_id = f"{'cmpl' if endpoint == 'completions' else 'chatcmpl'}-fake{next(self._ids):012d}"
            if endpoint == "completions":
                if body.get("stream") is True:
                    options = body.get("stream_options")
                    include_usage = isinstance(options, dict) and options.get("include_usage") is True
                    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                    for event in _completion_events(completion_id, created, model, answer, include_usage):
                        await send({"type": "http.response.body", "body": event, "more_body": True})
                    await send({"type": "http.response.body", "body": DONE, "more_body": False})
                else:
                    await _send_json(send, 200, _text_completion(completion_id, created, model, answer))
                return
            if body.get("stream") is True:
                with self._lock:
                    cut = self._cuts.popleft() if self._cuts else None
                options = body.get("stream_options")
                include_usage = isinstance(options, dict) and options.get("include_usage") is True
                events = _stream_events(completion_id, created, model, answer, include_usage)
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                for event in events[:cut]:
                    if self.chunk_delay:
                        await asyncio.sleep(self.chunk_delay)
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                if cut is not None and cut <= len(events):
                    raise StreamCut
                await send({"type": "http.response.body", "body": DONE, "more_body": False})
            else:
                content = _completion(completion_id, created, model, answer)
                await _send_json(send, 200, content)
        except OpenAIError as error:
            await _send_json(send, error.status, error.body, error.headers)

    def _authorise(self, authorization: str | None) -> None:
        if authorization is None or not authorization.strip():
            raise OpenAIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or key != self.api_key:
            shown = f"{key[:3]}****{key[-4:]}" if len(key) > 8 else "*" * len(key)
            raise OpenAIError(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _models(self, model_id: str | None) -> bytes:
        entries = [
            {"id": name, "object": "model", "created": MODELS_CREATED, "owned_by": "fake-upstream"}
            for name in self.models
        ]
        if model_id is None:
            return _dumps({"object": "list", "data": entries}).encode()
        for entry in entries:
            if entry["id"] == model_id:
                return _dumps(entry).encode()
        raise OpenAIError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            code="model_not_found",
        )


def serve_openai(**options: Any) -> FakeOpenAI:
    """A started fake (keyword options as `FakeOpenAI`); `stop()` it, or use it in a `with`."""
    return FakeOpenAI(**options).start()


# -- wire helpers ------------------------------------------------------------------------------


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


def _validated(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OpenAIError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)",
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIError(400, "you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise OpenAIError(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list) or not messages:
        raise OpenAIError(
            400, "Invalid 'messages': expected a non-empty array.", param="messages"
        )
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise OpenAIError(
            400, "Invalid 'messages': every message needs a 'role'.", param="messages"
        )
    for name in ("max_tokens", "max_completion_tokens"):
        limit = body.get(name)
        if limit is None:
            continue
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise OpenAIError(
                400, f"Invalid type for '{name}': expected an integer.", param=name,
                code="invalid_type",
            )
        if limit < 1:
            raise OpenAIError(
                400,
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, "
                f"but got {limit} instead.",
                param=name,
                code="integer_below_min_value",
            )
    return body


def _validated_completion(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise OpenAIError(400, "you must provide a model parameter")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) and not (isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt)):
        raise OpenAIError(400, "Invalid 'prompt': expected a string or an array of strings.", param="prompt")
    return body


def _validated_embeddings(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise OpenAIError(400, "you must provide a model parameter")
    given = body.get("input")
    if not isinstance(given, str) and not (isinstance(given, list) and given and all(isinstance(p, str) for p in given)):
        raise OpenAIError(400, "Invalid 'input': expected a string or an array of strings.", param="input")
    if "messages" in body or "max_tokens" in body:
        raise OpenAIError(400, "Unrecognized request argument supplied: " + ", ".join(k for k in ("messages", "max_tokens") if k in body))
    return body


def _embeddings(body: dict[str, Any]) -> bytes:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    dimensions = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
    tokens = sum(len(text.split()) for text in inputs)
    data = [
        {"object": "embedding", "index": index, "embedding": [round((len(text) % 97) / 97 + d / 1000, 6) for d in range(dimensions)]}
        for index, text in enumerate(inputs)
    ]
    return _dumps({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}).encode()


def _validated_response(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise OpenAIError(400, "you must provide a model parameter")
    given = body.get("input")
    if not isinstance(given, str) and not (isinstance(given, list) and given and all(isinstance(m, dict) for m in given)):
        raise OpenAIError(400, "Invalid 'input': expected a string or an array of input items.", param="input")
    for name in ("messages", "max_tokens", "stream_options"):
        if name in body and not (name == "stream_options" and isinstance(body[name], dict) and set(body[name]) <= {"include_obfuscation"}):
            raise OpenAIError(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    return body


def _response_object(response_id: str, created: int, body: dict[str, Any], answer: Answer, status: str) -> dict[str, Any]:
    done = status != "in_progress"
    message = {"id": f"msg_{response_id[5:]}", "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": answer.text, "annotations": []}]}
    found: dict[str, Any] = {
        "id": response_id, "object": "response", "created_at": created, "model": body["model"],
        "status": ("incomplete" if answer.finish_reason == "length" else "completed") if done else status,
        "output": [message] if done else [], "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "max_output_tokens": body.get("max_output_tokens"), "usage": None,
    }
    if done:
        found["usage"] = {
            "input_tokens": answer.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": answer.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        }
        if answer.finish_reason == "length":
            found["incomplete_details"] = {"reason": "max_output_tokens"}
    return found


def _response_events(response_id: str, created: int, body: dict[str, Any], answer: Answer) -> list[bytes]:
    """The Responses API's named events for one text answer, numbered in sequence."""
    item_id = f"msg_{response_id[5:]}"
    final = _response_object(response_id, created, body, answer, "completed")
    steps: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": _response_object(response_id, created, body, answer, "in_progress")}),
        ("response.output_item.added", {"output_index": 0, "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        ("response.content_part.added", {"item_id": item_id, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
    ]
    for index, word in enumerate(answer.words):
        steps.append(("response.output_text.delta", {"item_id": item_id, "output_index": 0, "content_index": 0, "delta": word if index == 0 else " " + word}))
    steps += [
        ("response.output_text.done", {"item_id": item_id, "output_index": 0, "content_index": 0, "text": answer.text}),
        ("response.output_item.done", {"output_index": 0, "item": final["output"][0]}),
        ("response.incomplete" if final["status"] == "incomplete" else "response.completed", {"response": final}),
    ]
    return [
        f"event: {name}\ndata: {_dumps({'type': name, 'sequence_number': number, **data})}\n\n".encode()
        for number, (name, data) in enumerate(steps)
    ]


def _text_completion(completion_id: str, created: int, model: str, answer: Answer) -> bytes:
    choices = [{"text": answer.text, "index": index, "logprobs": None, "finish_reason": answer.finish_reason} for index in range(answer.choices)]
    usage = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens, "total_tokens": answer.prompt_tokens + answer.completion_tokens}
    return _dumps({"id": completion_id, "object": "text_completion", "created": created, "model": model, "choices": choices, "usage": usage}).encode()


def _completion_events(completion_id: str, created: int, model: str, answer: Answer, include_usage: bool) -> list[bytes]:
    def event(choices: list[Any], usage: Any = None) -> bytes:
        data: dict[str, Any] = {"id": completion_id, "object": "text_completion", "created": created, "model": model, "choices": choices}
        if include_usage:
            data["usage"] = usage
        return b"data: " + _dumps(data).encode() + b"\n\n"

    events = []
    for choice in range(answer.choices):
        for index, word in enumerate(answer.words):
            events.append(event([{"text": word if index == 0 else " " + word, "index": choice, "logprobs": None, "finish_reason": None}]))
        events.append(event([{"text": "", "index": choice, "logprobs": None, "finish_reason": answer.finish_reason}]))
    if include_usage:
        events.append(event([], {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens, "total_tokens": answer.prompt_tokens + answer.completion_tokens}))
    return events


def _injected(status: int, retry_after: float, message: str | None = None) -> OpenAIError:
    headers = []
    if status == 429:
        # Retry-After is whole seconds (RFC 9110; litellm reads it with int() and ignores "0.5");
        # the OpenAI SDK prefers retry-after-ms, which keeps the fraction.
        headers = [
            (b"retry-after", str(math.ceil(retry_after)).encode()),
            (b"retry-after-ms", str(round(retry_after * 1000)).encode()),
        ]
    message = message or ERROR_MESSAGES.get(status, f"Injected failure (HTTP {status}).")
    return OpenAIError(status, message, code=ERROR_CODES.get(status), headers=headers)


def _usage(answer: Answer) -> str:
    return (
        f'{{"prompt_tokens":{answer.prompt_tokens},'
        f'"completion_tokens":{answer.completion_tokens},'
        f'"total_tokens":{answer.prompt_tokens + answer.completion_tokens},{USAGE_DETAILS}}}'
    )


def _completion(completion_id: str, created: int, model: str, answer: Answer) -> bytes:
    # Built as text rather than json.dumps(dict): this is the benchmarks' hot path.
    return (
        f'{{"id":"{completion_id}","object":"chat.completion","created":{created},'
        f'"model":{_dumps(model)},"system_fingerprint":null,'
        f'"choices":[{",".join(_choice(index, answer) for index in range(answer.choices))}],'
        f'"usage":{_usage(answer)},"service_tier":"default"}}'
    ).encode()


def _choice(index: int, answer: Answer) -> str:
    return (
        f'{{"index":{index},"message":{{"role":"assistant","content":{_dumps(answer.text)},'
        f'"refusal":null,"annotations":[]}},"logprobs":null,'
        f'"finish_reason":"{answer.finish_reason}"}}'
    )


def _stream_events(
    completion_id: str, created: int, model: str, answer: Answer, include_usage: bool
) -> list[bytes]:
    """The `data:` events before `[DONE]`. With include_usage, OpenAI sends `"usage": null` in
    every chunk but the last, which has no choices and the usage."""
    head = (
        f'data: {{"id":"{completion_id}","object":"chat.completion.chunk","created":{created},'
        f'"model":{_dumps(model)},"system_fingerprint":null,"service_tier":"default",'
    )
    tail = ',"usage":null}\n\n' if include_usage else "}\n\n"

    def chunk(delta: str, finish_reason: str = "null", choice: int = 0) -> bytes:
        return (
            f'{head}"choices":[{{"index":{choice},"delta":{delta},"logprobs":null,'
            f'"finish_reason":{finish_reason}}}]{tail}'
        ).encode()

    events = []
    for choice in range(answer.choices):
        events.append(chunk('{"role":"assistant","content":"","refusal":null}', choice=choice))
        for index, word in enumerate(answer.words):
            events.append(chunk(f'{{"content":{_dumps(word if index == 0 else " " + word)}}}', choice=choice))
        events.append(chunk("{}", f'"{answer.finish_reason}"', choice))
    if include_usage:
        events.append(f'{head}"choices":[],"usage":{_usage(answer)}}}\n\n'.encode())
    return events


async def _send_json(
    send: Any, status: int, content: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            *JSON_HEADERS,
            (b"content-length", str(len(content)).encode()),
            *(headers or []),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": content})


# -- standalone, for benchmarks ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the fake OpenAI upstream under uvicorn.")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--model", action="append", dest="models", help="repeatable")
    args = parser.parse_args(argv)

    # Bind first, so --port 0 works and the URL printed already accepts connections. The socket
    # goes to uvicorn as a socket: passed as `fd=` uvicorn takes it for a Unix socket and skips
    # TCP_NODELAY, which caps keep-alive clients at ~700 requests/s (Nagle + delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    print(f"http://{args.host}:{sock.getsockname()[1]}/v1", flush=True)

    fake = FakeOpenAI(
        api_key=args.api_key, reply=args.reply, models=args.models or DEFAULT_MODELS, record=False
    )
    config = uvicorn.Config(
        fake.app,
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
        interface="asgi3",  # a bound method is not recognised as ASGI 3 on its own
        backlog=2048,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    if not __package__:
        # `python tests/fakes/openai.py`: sys.path[0] is tests/fakes/, where this very file would
        # shadow the real `openai` package for anything imported from now on.
        sys.path[0] = str(Path(__file__).resolve().parent.parent)
    main()
