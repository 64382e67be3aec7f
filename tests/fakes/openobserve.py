"""A fake OpenObserve that speaks its JSON log ingestion API on a loopback port.

`POST /api/{org}/{stream}/_json` with HTTP basic auth and a JSON array of records, answered as
OpenObserve answers (its `IngestionResponse`):

    200 {"code": 200, "status": [{"name": "audit", "successful": 2, "failed": 1,
                                   "error": "Too old data, ..."}]}

401 on missing or wrong credentials, 400 when the body is not a JSON array, 404 elsewhere. A
record whose `_timestamp` lies further back than the ingestion window (5 hours by default, as
`ZO_INGEST_ALLOWED_UPTO`) is counted as failed, as OpenObserve does; that gives tests a real
partial failure. Switches for the unhappy paths:

    with FakeOpenObserve(user="u", password="p") as fake:
        fake.fail_next(3, status=503)      # the next 3 requests answer 503, storing nothing
        fake.fail_next(1, status=429, retry_after=2)
        fake.fail_next(2, after=1)         # let one request through, then fail two
        fake.delay = 1.5                   # answer every request 1.5 s late
        fake.stop(); fake.start()          # down (connection refused), then up on the same port
        fake.records("org", "stream"); fake.requests
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .server import LoopbackServer, Message, Scope, serve_asgi

INGEST_PATH = re.compile(r"^/api/(?P<org>[^/]+)/(?P<stream>[^/]+)/_json$")
TOO_OLD = (
    "Too old data, only last {hours} hours data can be ingested. Data discarded. You can adjust "
    "ingestion max time by setting the environment variable ZO_INGEST_ALLOWED_UPTO=<max_hours>"
)
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class IngestRequest:
    """One request the fake answered: where it went, how many records it carried, the status."""

    method: str
    path: str
    org: str | None
    stream: str | None
    record_count: int | None
    status: int


def _timestamp_micros(value: Any) -> int | None:
    """OpenObserve reads `_timestamp` in s, ms, µs or ns, telling them apart by size."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = int(value)
    if value < 10**11:
        return value * 1_000_000
    if value < 10**14:
        return value * 1_000
    if value < 10**17:
        return value
    return value // 1_000


class FakeOpenObserve:
    """The fake service: an ASGI app with state, served by a `LoopbackServer`."""

    def __init__(
        self,
        *,
        user: str = "root@example.com",
        password: str = "Complexpass#123",
        ingest_allowed_upto_hours: int = 5,
    ) -> None:
        self.user = user
        self.password = password
        self.ingest_allowed_upto_hours = ingest_allowed_upto_hours
        self.delay = 0.0
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], list[Any]] = {}
        self._requests: list[IngestRequest] = []
        self._failures: deque[tuple[int, int | None] | None] = deque()
        self._server: LoopbackServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOpenObserve has not been started")
        return self._server.url

    def start(self) -> FakeOpenObserve:
        """Serve (again); after `stop()` the same port is reused, so clients find it back."""
        if self._server is None:
            self._server = serve_asgi(self.app)
        else:
            self._server.start()
        return self

    def stop(self) -> None:
        """Go down: new connections are refused and open ones are cut."""
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> FakeOpenObserve:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- switches and inspection -------------------------------------------------------------

    def fail_next(
        self, count: int, *, status: int = 503, retry_after: int | None = None, after: int = 0
    ) -> None:
        """Answer `count` requests with `status` (before auth), storing nothing; the first
        `after` requests from now are answered normally."""
        with self._lock:
            self._failures.extend([None] * after + [(status, retry_after)] * count)

    def records(self, org: str, stream: str) -> list[Any]:
        """The records stored in (org, stream), in arrival order."""
        with self._lock:
            return list(self._records.get((org, stream), []))

    @property
    def requests(self) -> list[IngestRequest]:
        with self._lock:
            return list(self._requests)

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
        if self.delay:
            await asyncio.sleep(self.delay)
        status, payload, headers, count = self._answer(scope, body)
        match = INGEST_PATH.match(scope["path"])
        with self._lock:
            self._requests.append(
                IngestRequest(
                    method=scope["method"],
                    path=scope["path"],
                    org=match["org"] if match else None,
                    stream=match["stream"] if match else None,
                    record_count=count,
                    status=status,
                )
            )
        content = json.dumps(payload).encode()
        start: Message = {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                *headers,
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": content})

    def _answer(
        self, scope: Scope, body: bytes
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]], int | None]:
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            status, retry_after = failure
            headers = []
            if retry_after is not None:
                headers.append((b"retry-after", str(retry_after).encode()))
            return status, _error(status, REASONS.get(status, "Injected failure")), headers, None

        match = INGEST_PATH.match(scope["path"])
        if match is None:
            return 404, _error(404, "Not Found"), [], None
        if scope["method"] != "POST":
            return 405, _error(405, "Method Not Allowed"), [], None
        if not self._authorised(scope):
            return 401, _error(401, "Unauthorized Access"), [], None
        try:
            records = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            return 400, _error(400, f"Invalid json: {exc}"), [], None
        if not isinstance(records, list):
            return 400, _error(400, "Invalid json: expected an array of records"), [], None

        org, stream = match["org"], match["stream"]
        accepted, failed, error = self._validate(records)
        with self._lock:
            self._records.setdefault((org, stream), []).extend(accepted)
        stream_status: dict[str, Any] = {
            "name": stream,
            "successful": len(accepted),
            "failed": failed,
        }
        if error:
            stream_status["error"] = error
        return 200, {"code": 200, "status": [stream_status]}, [], len(records)

    def _authorised(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == (self.user, self.password)

    def _validate(self, records: list[Any]) -> tuple[list[Any], int, str]:
        oldest = int((time.time() - self.ingest_allowed_upto_hours * 3600) * 1_000_000)
        accepted, failed, errors = [], 0, []
        for record in records:
            if not isinstance(record, dict):
                failed += 1
                errors.append("Invalid record: expected a JSON object")
                continue
            micros = _timestamp_micros(record.get("_timestamp"))
            if micros is not None and micros < oldest:
                failed += 1
                errors.append(TOO_OLD.format(hours=self.ingest_allowed_upto_hours))
                continue
            accepted.append(record)
        return accepted, failed, "; ".join(dict.fromkeys(errors))


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}
