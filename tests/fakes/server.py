"""Serve an ASGI or WSGI app on a loopback port in a background thread, for the fakes.

External services are replaced in tests by real HTTP servers that follow the documented API, so
our clients run their real transport code. Only the standard library is used, because CI installs
nothing beyond the project's test extras.

    with serve_asgi(app) as server:
        httpx.get(f"{server.url}/health")

`stop()` closes the listening socket *and* every open connection, so a client holding a
keep-alive connection sees the service go down, as it would with a real outage; `start()` serves
again on the same port. The ASGI adapter speaks HTTP/1.1 with keep-alive and streams response
bodies (chunked when the app sets no content-length); it sends no lifespan events.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

HOST = "127.0.0.1"


class _LoopbackServerMixin:
    """Threads per connection; remembers open connections so `stop()` can cut them."""

    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall for seconds.
        socketserver.TCPServer.server_bind(self)  # type: ignore[arg-type]
        host, port = self.server_address[:2]  # type: ignore[attr-defined]
        self.server_name = host
        self.server_port = port

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()  # type: ignore[misc]
        # Headers and body go out as two writes; without this, Nagle plus delayed ACK stall
        # every keep-alive request by ~40 ms.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)  # type: ignore[misc]

    def cut_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away, or a connection cut by stop(), is not a test failure.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)  # type: ignore[misc]


def _init_tracking(server: Any) -> None:
    server._connections = set()
    server._connections_lock = threading.Lock()


class _ThreadingHTTPServer(_LoopbackServerMixin, socketserver.ThreadingMixIn, HTTPServer):
    def __init__(self, address: tuple[str, int], handler: type, app: ASGIApp) -> None:
        _init_tracking(self)
        self.app = app
        super().__init__(address, handler)


class _ThreadingWSGIServer(_LoopbackServerMixin, socketserver.ThreadingMixIn, WSGIServer):
    def __init__(self, address: tuple[str, int], handler: type) -> None:
        _init_tracking(self)
        super().__init__(address, handler)

    def server_bind(self) -> None:
        super().server_bind()
        self.setup_environ()  # what WSGIServer.server_bind adds, skipped by the mixin's


class _QuietWSGIRequestHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _ASGIRequestHandler(BaseHTTPRequestHandler):
    """Turns one HTTP/1.1 request into an ASGI call and writes the app's answer back."""

    protocol_version = "HTTP/1.1"
    server: _ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._call_app()
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _scope(self) -> Scope:
        raw_path, _, query = self.path.partition("?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": self.command,
            "scheme": "http",
            "path": unquote(raw_path),
            "raw_path": raw_path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in self.headers.items()
            ],
            "client": self.client_address[:2],
            "server": self.server.server_address[:2],
        }

    def _call_app(self) -> None:
        body = self._read_body()
        state = {"body_sent": False, "started": False, "chunked": False}
        is_head = self.command == "HEAD"

        async def run() -> None:
            response_complete = asyncio.Event()

            async def receive() -> Message:
                if not state["body_sent"]:
                    state["body_sent"] = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await response_complete.wait()  # the request is over only when we answered
                return {"type": "http.disconnect"}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = [
                        (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                        for name, value in message.get("headers", [])
                    ]
                    names = {name.lower() for name, _ in headers}
                    state["chunked"] = "content-length" not in names and not is_head
                    self.send_response(message["status"])
                    for name, value in headers:
                        self.send_header(name, value)
                    if state["chunked"]:
                        self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    state["started"] = True
                elif message["type"] == "http.response.body":
                    chunk = bytes(message.get("body", b""))
                    more = message.get("more_body", False)
                    if not is_head:
                        if state["chunked"]:
                            if chunk:
                                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            if not more:
                                self.wfile.write(b"0\r\n\r\n")
                        else:
                            self.wfile.write(chunk)
                    self.wfile.flush()
                    if not more:
                        response_complete.set()

            await self.server.app(self._scope(), receive, send)

        try:
            asyncio.run(run())
        except OSError:
            raise
        except Exception:
            if state["started"]:
                self.close_connection = True
                return
            self.send_error(500, "The fake's ASGI app raised; see the test output")
            raise


class LoopbackServer:
    """One server on 127.0.0.1 serving in a daemon thread; a context manager."""

    def __init__(self, make_server: Callable[[int], socketserver.TCPServer], port: int = 0):
        self._make_server = make_server
        self._port = port
        self._httpd: socketserver.TCPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the server has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> LoopbackServer:
        """Listen (again) on the same port as before, or on a free one the first time."""
        if self._httpd is not None:
            return self
        httpd = self._make_server(self._port)
        self._port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"loopback-server-{self._port}",
            daemon=True,
        )
        self._httpd = httpd
        self._thread.start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut open ones, like a service that went down."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.server_close()
        httpd.cut_connections()  # type: ignore[attr-defined]
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_asgi(app: ASGIApp, *, port: int = 0) -> LoopbackServer:
    """A started server for an ASGI app (each request runs in its own thread and event loop)."""
    return LoopbackServer(
        lambda p: _ThreadingHTTPServer((HOST, p), _ASGIRequestHandler, app), port
    ).start()


def serve_wsgi(app: WSGIApp, *, port: int = 0) -> LoopbackServer:
    """A started server for a WSGI app (wsgiref: one request per connection)."""

    def make(p: int) -> socketserver.TCPServer:
        httpd = _ThreadingWSGIServer((HOST, p), _QuietWSGIRequestHandler)
        httpd.set_app(app)
        return httpd

    return LoopbackServer(make, port).start()
