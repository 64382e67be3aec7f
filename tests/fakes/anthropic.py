"""A fake Anthropic upstream: the Messages API on a loopback port.

It follows Anthropic's documented wire format so the gateway's direct path and litellm's
translation run their real HTTP and SSE code, and answers deterministically:

- `POST /v1/messages` needs `x-api-key: <api_key>` (401 otherwise) and `anthropic-version`
  (400 otherwise); the body needs `model`, `max_tokens` (an integer ≥ 1) and a non-empty
  `messages` list. Errors are Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.
- The answer is `reply`, or the rest of the last user message when it starts with "echo:", cut
  to `max_tokens` words (`stop_reason` "max_tokens" instead of "end_turn").
- `usage.input_tokens` counts the words of `system` and of every message's text;
  `output_tokens` the words answered. `cache_read` words of the input are reported as
  `cache_read_input_tokens` instead (the real API reports cached input apart from
  `input_tokens`).
- `"stream": true` answers the documented events: `message_start` (input usage),
  `content_block_start`, one `content_block_delta` per word, `content_block_stop`,
  `message_delta` (stop reason and the cumulative usage), `message_stop`.
- `POST /v1/messages/count_tokens` answers `{"input_tokens": N}` for the same count.

    with FakeAnthropic(reply="Hi") as fake:
        litellm_params = {"model": "anthropic/claude-x", "api_base": fake.url, "api_key": fake.api_key}

Benchmarks run the same app under uvicorn (httptools, no access log, no recording):

    python tests/fakes/anthropic.py --port 8901 [--reply TEXT] [--api-key KEY]
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from .server import LoopbackServer, Scope

HOST = "127.0.0.1"

DEFAULT_API_KEY = "sk-ant-fake-upstream"
DEFAULT_REPLY = "Hello from the fake Anthropic."
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


@dataclass(frozen=True)
class MessagesRequest:
    path: str
    body: Any
    headers: dict[str, str]


class AnthropicError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


class FakeAnthropic:
    def __init__(self, *, api_key: str = DEFAULT_API_KEY, reply: str = DEFAULT_REPLY, record: bool = True) -> None:
        self.api_key = api_key
        self.reply = reply
        self.record = record  # benchmarks turn it off: the list would grow without bound
        self.cache_read = 0
        self._lock = threading.Lock()
        self._requests: list[MessagesRequest] = []
        self._ids = itertools.count(1)
        self._server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        """The base URL litellm and the gateway take as `api_base` (without `/v1`)."""
        assert self._server is not None
        return self._server.url

    def start(self) -> FakeAnthropic:
        # Imported here so that running this file as a script needs no package around it.
        from .server import serve_asgi

        self._server = serve_asgi(self.app) if self._server is None else self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def requests(self) -> list[MessagesRequest]:
        with self._lock:
            return list(self._requests)

    def input_tokens(self, body: dict[str, Any]) -> int:
        words = len(_text(body.get("system")).split()) + sum(len(_text(m.get("content")).split()) for m in body["messages"] if isinstance(m, dict))
        return words

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1") for k, v in scope["headers"]}
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        path = scope["path"]
        if self.record:
            with self._lock:
                self._requests.append(MessagesRequest(path, body, headers))
        try:
            if scope["method"] != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
                raise AnthropicError(404, "not_found_error", f"Not found: {scope['method']} {path}")
            if headers.get("x-api-key") != self.api_key:
                raise AnthropicError(401, "authentication_error", "invalid x-api-key")
            if not headers.get("anthropic-version"):
                raise AnthropicError(400, "invalid_request_error", "anthropic-version: header is required")
            body = _validated(body, counting=path.endswith("count_tokens"))
            if path.endswith("count_tokens"):
                await _send(send, 200, json.dumps({"input_tokens": self.input_tokens(body)}).encode())
                return
            await self._answer(body, send)
        except AnthropicError as error:
            await _send(send, error.status, error.body)

    async def _answer(self, body: dict[str, Any], send: Any) -> None:
        text = self.reply
        last = next((m for m in reversed(body["messages"]) if m.get("role") == "user"), None)
        said = _text(last.get("content")) if last else ""
        if said.startswith("echo:"):
            text = said[5:].strip()
        words = text.split()
        stop = "end_turn"
        if len(words) > body["max_tokens"]:
            words, stop = words[: body["max_tokens"]], "max_tokens"
        prompt = self.input_tokens(body)
        cached = min(self.cache_read, prompt)
        usage = {"input_tokens": prompt - cached, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached, "output_tokens": len(words)}
        message_id = f"msg_fake{next(self._ids):012d}"
        if body.get("stream") is not True:
            answer = {"id": message_id, "type": "message", "role": "assistant", "model": body["model"],
                      "content": [{"type": "text", "text": " ".join(words)}], "stop_reason": stop, "stop_sequence": None, "usage": usage}
            await _send(send, 200, json.dumps(answer).encode())
            return
        opening = {**usage, "output_tokens": 1}
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"message": {"id": message_id, "type": "message", "role": "assistant", "model": body["model"], "content": [],
                                           "stop_reason": None, "stop_sequence": None, "usage": opening}}),
            ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            *[("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word if i == 0 else " " + word}}) for i, word in enumerate(words)],
            ("content_block_stop", {"index": 0}),
            ("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage}),
            ("message_stop", {}),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for name, data in events:
            chunk = f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _validated(body: Any, *, counting: bool) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise AnthropicError(400, "invalid_request_error", "model: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages):
        raise AnthropicError(400, "invalid_request_error", "messages: at least one message with a role is required")
    if not counting:
        limit = body.get("max_tokens")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise AnthropicError(400, "invalid_request_error", "max_tokens: Field required (an integer >= 1)")
    return body


async def _send(send: Any, status: int, content: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*JSON_HEADERS, (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})


def serve_anthropic(**options: Any) -> FakeAnthropic:
    return FakeAnthropic(**options).start()


# -- standalone, for benchmarks ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the fake Anthropic upstream under uvicorn.")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args(argv)

    # Bound here and handed to uvicorn as a socket, as tests/fakes/openai.py does (TCP_NODELAY).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    print(f"http://{args.host}:{sock.getsockname()[1]}", flush=True)

    fake = FakeAnthropic(api_key=args.api_key, reply=args.reply, record=False)
    config = uvicorn.Config(
        fake.app, http="httptools", access_log=False, log_level="warning", lifespan="off", interface="asgi3", backlog=2048
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    if not __package__:
        # `python tests/fakes/anthropic.py`: sys.path[0] is tests/fakes/, where this very file would
        # shadow the real `anthropic` package for anything imported from now on.
        sys.path[0] = str(Path(__file__).resolve().parent.parent)
    main()
