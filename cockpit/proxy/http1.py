"""A keep-alive HTTP/1.1 client for the direct upstream path, on asyncio and httptools.

Every governed call pays for its upstream request, so this is the gateway's floor: httpx spent
about 1 ms of CPU per call here and aiohttp 0.25–0.35 ms, where a protocol that hands the
parser's chunks straight to the caller spends about 0.1 ms. It does only what the direct path
needs: POST a body, read the status and headers, then the body whole or chunk by chunk as it
arrives (chunked transfer decoding is the parser's), over pooled connections per origin, TLS
included. What it does not do (HTTP/2, proxies, redirects, compression) the direct path does not
use: a deployment that needs a proxy goes through litellm (`Direct.of`).

Failures are named for what happened, as `cockpit.proxy.errors.upstream_error` reads them:
`ConnectError` (nothing reached the upstream), `ReadTimeout` (it did not answer in time),
`RemoteProtocolError` (the connection broke or spoke something else than HTTP/1.1).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import AsyncIterator
from urllib.parse import urlsplit

import httptools

MAX_IDLE_PER_ORIGIN = 256
"""Idle connections kept per origin; more are closed when they come back."""
READ_BUFFER_LIMIT = 1 << 20
"""Bytes of body buffered before the connection stops reading (the caller is slower)."""


class ConnectError(ConnectionError):
    """The upstream could not be reached: refused, reset before an answer, DNS, TLS."""


class ReadTimeout(TimeoutError):
    """The upstream did not answer (or stopped sending) within the timeout."""


class RemoteProtocolError(Exception):
    """The connection ended before the answer did, or the answer is not HTTP/1.1."""


class _Connection(asyncio.Protocol):
    """One upstream connection: parses responses and queues their body chunks."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.response: Response | None = None

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(RemoteProtocolError(f"the upstream's answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(RemoteProtocolError("the upstream closed the connection before its answer ended"))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        response = self.response
        if response is not None and not response.complete:
            response._fail(error)
        if self.transport is not None:
            self.transport.close()

    # -- httptools callbacks --
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        response.status = self.parser.get_status_code()
        response.keep_alive = self.parser.should_keep_alive()
        response._wake()

    def on_body(self, body: bytes) -> None:
        response = self.response
        assert response is not None
        response._chunks.append(body)
        response._buffered += len(body)
        if response._buffered > READ_BUFFER_LIMIT and self.transport is not None:
            self.transport.pause_reading()
        response._wake()

    def on_message_complete(self) -> None:
        response = self.response
        assert response is not None
        response.complete = True
        response._wake()


class Response:
    """An upstream's answer: `status` and `headers` once `Client.send` returns; the body by
    `read()` or `iter_chunks()`; `aclose()` gives the connection back (or drops it when the
    body was not read to its end)."""

    def __init__(self, client: "Client", origin: tuple[str, str, int], connection: _Connection, timeout: float) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.complete = False
        self._client, self._origin, self._connection, self._timeout = client, origin, connection, timeout
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._wake()

    async def _wait(self) -> None:
        """Until the connection brings more (or fails), at most the timeout. A timer on the
        waiter itself, not `asyncio.wait_for`: that wraps the wait in a second future and
        callbacks, paid on every wait of every call (each chunk of a stream)."""
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._timeout, _expire, waiter)
        try:
            await waiter
        except ReadTimeout:
            self._connection._fail(ReadTimeout("the upstream stopped answering"))
            raise ReadTimeout("the upstream did not answer in time") from None
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None and not self._chunks and not self.complete:
            raise self._error

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive (already de-chunked)."""
        try:
            while True:
                while self._chunks:
                    chunk = self._chunks.popleft()
                    self._buffered -= len(chunk)
                    if self._buffered <= READ_BUFFER_LIMIT // 2 and self._connection.transport is not None:
                        self._connection.transport.resume_reading()
                    yield chunk
                if self.complete:
                    return
                await self._wait()
        finally:
            self.release()

    async def read(self) -> bytes:
        """The whole body."""
        parts = [chunk async for chunk in self.iter_chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Give the connection back: to the pool when its answer was read whole and it may be
        kept alive, else closed."""
        if self._released:
            return
        self._released = True
        connection = self._connection
        connection.response = None
        if self.complete and self.keep_alive and not connection.closed and self._error is None:
            self._client._idle_connection(self._origin, connection)
        elif connection.transport is not None:
            connection.closed = True
            connection.transport.close()

    async def aclose(self) -> None:
        self.release()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout("the upstream did not answer in time"))


class Client:
    """Pooled connections per origin (scheme, host, port)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    def _idle_connection(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if self._closed or len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.closed = True
            if connection.transport is not None:
                connection.transport.close()
            return
        idle.append(connection)

    async def _connect(self, origin: tuple[str, str, int], timeout: float) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(loop.create_connection(_Connection, host, port, ssl=tls, server_hostname=host if tls else None), timeout)
        except asyncio.TimeoutError:
            raise ConnectError(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"could not connect to {host}:{port}: {type(exc).__name__}") from exc
        return connection

    async def send(self, url: str, body: bytes, headers: list[tuple[bytes, bytes]], *, timeout: float, connect_timeout: float) -> Response:
        """POST `body` to `url`; returns once the status line and headers arrived."""
        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if scheme == "https" else 80)
        origin = (scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = host if parts.port is None else f"{host}:{port}"
        head = [b"POST ", target.encode(), b" HTTP/1.1\r\nhost: ", host_header.encode(), b"\r\ncontent-length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        message = b"".join(head) + body
        idle = self._idle.get(origin)
        while idle:  # the most recently used first; ones the upstream closed meanwhile are skipped
            connection = idle.pop()
            if connection.closed or connection.transport is None or connection.transport.is_closing():
                continue
            try:
                return await self._exchange(origin, connection, message, timeout)
            except RemoteProtocolError:  # closed as we sent: the request never reached it whole
                continue
        return await self._exchange(origin, await self._connect(origin, connect_timeout), message, timeout, fresh=True)

    async def _exchange(self, origin: tuple[str, str, int], connection: _Connection, message: bytes, timeout: float, fresh: bool = False) -> Response:
        response = Response(self, origin, connection, timeout)
        connection.response = response
        assert connection.transport is not None
        connection.transport.write(message)
        try:
            while not response.status:
                await response._wait()
        except RemoteProtocolError:
            response.release()
            if fresh:
                raise ConnectError("the upstream closed the connection without answering") from None
            raise
        except BaseException:
            response.release()
            raise
        return response

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                if connection.transport is not None:
                    connection.transport.close()
        self._idle.clear()
