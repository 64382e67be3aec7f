"""Request size limits, enforced before anything is buffered whole.

Two layers, because neither alone bounds memory:

- **The head** (request line and header fields) is bounded in the HTTP protocol itself, before
  the app exists for the request: uvicorn's h11 buffers at most `h11_max_incomplete_event_size`
  bytes of an unfinished head, but httptools (uvicorn's default when installed) keeps a header
  value, or a URL, of any length until it ends: four 64 MB headers were held whole and answered.
  `BoundedHttpToolsProtocol` counts the bytes of a head as they arrive and answers 431 past
  `MAX_HEADER_BYTES`, or past `MAX_HEADERS` fields. `server_options` gives `uvicorn.run` either
  protocol with these bounds.
- **The body** is bounded by `RequestLimitMiddleware` (pure ASGI, outermost): a Content-Length
  above `COCKPIT_MAX_BODY_BYTES` is refused before a byte of the body is read; a chunked body is
  counted as the app reads it and reading stops at the limit. It also refuses more than
  `MAX_HEADERS` fields (the h11 path counts none) and a POST body that is not JSON (415): a
  browser can send `text/plain` or a form cross-site without asking first.

Refusals are in OpenAI's error shape (what the proxy's clients read), with `detail` alongside
for the read API's clients, and close the connection so an unread body is not read on.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Mapping, MutableMapping

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_LIMIT_VARIABLE = "COCKPIT_MAX_BODY_BYTES"
MAX_BODY_BYTES = 4 * 1024 * 1024
"""The default request body limit: chat requests are JSON text; 4 MiB is about a million tokens."""
MAX_HEADER_BYTES = 64 * 1024
"""Request line plus header fields, as received."""
MAX_HEADERS = 100
HTTP_IMPLEMENTATIONS = ("auto", "httptools", "h11")
ERROR_TYPES = {400: "invalid_request_error", 403: "permission_error", 413: "invalid_request_error", 415: "invalid_request_error", 431: "invalid_request_error"}
JSON_TYPES = ("application/json",)


class LimitSettingError(ValueError):
    """A limit in the environment is not a usable number; the message says how to fix it."""


def max_body_bytes(environ: Mapping[str, str]) -> int:
    """`COCKPIT_MAX_BODY_BYTES` (a whole number of bytes, at least 1 KiB), else 4 MiB."""
    raw = (environ.get(BODY_LIMIT_VARIABLE) or "").strip().replace("_", "")
    if not raw:
        return MAX_BODY_BYTES
    if not raw.isdigit() or int(raw) < 1024:
        raise LimitSettingError(f"{BODY_LIMIT_VARIABLE} must be a whole number of bytes, at least 1024 (e.g. 4194304 for 4 MiB), not {raw!r}")
    return int(raw)


def server_options(http: str = "auto") -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run`/`uvicorn.Config` that bound the head of a request
    whichever parser runs: `auto` is httptools when installed (bounded here), else h11."""
    if http not in HTTP_IMPLEMENTATIONS:
        raise ValueError(f"unknown HTTP implementation {http!r}: use one of {', '.join(HTTP_IMPLEMENTATIONS)}")
    protocol = "uvicorn.protocols.http.h11_impl:H11Protocol" if http == "h11" else "cockpit.server.limits:BoundedHttpToolsProtocol"
    return {"http": protocol, "h11_max_incomplete_event_size": MAX_HEADER_BYTES}


def error_body(status: int, message: str, code: str) -> bytes:
    """OpenAI's error object, plus `detail` as the read API's other errors carry it."""
    error = {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"), "param": None, "code": code}
    return json.dumps({"error": error, "detail": message}).encode()


async def respond(send: Send, status: int, message: str, code: str, *, close: bool = True) -> None:
    """Send a whole error response; `close` ends the connection too, so a body the request
    still carries is not read on."""
    body = error_body(status, message, code)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] + ([(b"connection", b"close")] if close else [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> str:
    return f"The request body is larger than {limit} bytes, the limit of this server ({BODY_LIMIT_VARIABLE}). Send a smaller request."


class RequestLimitMiddleware:
    """Bounds the body (Content-Length up front, chunked bodies as they are read), the number
    of header fields, and refuses non-JSON POST bodies."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES, max_headers: int = MAX_HEADERS) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or ()
        if len(headers) > self.max_headers:
            await respond(send, 431, f"The request has {len(headers)} header fields; this server accepts at most {self.max_headers}.", "too_many_headers")
            return
        length: bytes | None = None
        content_type = b""
        has_body = False
        for name, value in headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"content-type":
                content_type = value
        if length is not None:
            if not length.strip().isdigit():
                await respond(send, 400, "The Content-Length header is not a number of bytes.", "invalid_content_length")
                return
            size = int(length)
            has_body = has_body or size > 0
            if size > self.max_body_bytes:
                await respond(send, 413, _too_large(self.max_body_bytes), "request_too_large")
                return
        if scope["method"] == "POST" and has_body and not _is_json(content_type):
            shown = content_type.decode("latin-1")[:100] or "none"
            await respond(send, 415, f"The request body must be JSON: send it with `Content-Type: application/json` (this request said: {shown}).", "unsupported_media_type")
            return
        await self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a receive that counts the body and, past the limit, answers 413
        itself and tells the app the client has gone (so it stops reading and its own answer
        is dropped)."""
        limit = self.max_body_bytes
        received = 0
        started = False
        refused = False

        async def limited_receive() -> MutableMapping[str, Any]:
            nonlocal received, refused, started
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        refused = started = True
                        await respond(send, 413, _too_large(limit), "request_too_large")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:  # the app failed on the disconnect we told it of: already answered
                raise


def _is_json(content_type: bytes) -> bool:
    kind = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    return kind in JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json"))


class _TooManyHeaders(Exception):
    """Raised from the parser's header callback to stop parsing."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded head: httptools keeps a header value or URL
    of any length until it ends, so the bytes of a head are counted as they arrive and past
    `max_head_bytes` (or `max_headers` fields) the server answers 431 and closes. What is held
    is at most the limit plus one read (256 KiB)."""

    max_head_bytes = MAX_HEADER_BYTES
    max_headers = MAX_HEADERS

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._too_many = False
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        self._header_count = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._too_many = True
            raise _TooManyHeaders()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        """As uvicorn's, plus the head's byte count and the 431 refusals."""
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._too_many:
                self._refuse(f"The request has more than {self.max_headers} header fields; this server accepts at most {self.max_headers}.", "too_many_headers")
                return
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse(f"The request line and headers are larger than {self.max_head_bytes} bytes, the limit of this server.", "headers_too_large")

    def _refuse(self, message: str, code: str) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a response is on the wire: an answer now would corrupt it
            return
        body = error_body(431, message, code)
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend([b"content-type: application/json\r\n", b"content-length: ", str(len(body)).encode(), b"\r\n", b"connection: close\r\n\r\n", body])
        self.transport.write(b"".join(head))
        self.transport.close()
