"""A fake OpenTelemetry collector: the OTLP/HTTP traces endpoint on a loopback port.

`POST /v1/traces` with `Content-Type: application/x-protobuf` and an
`ExportTraceServiceRequest` body (gzip when `Content-Encoding: gzip`), answered 200 with an
empty `ExportTraceServiceResponse`, as a collector does; 415 for another content type, 400 for
a body that does not decode, 404 elsewhere. The spans received are kept, flattened:

    with FakeCollector() as collector:
        ... OTEL_EXPORTER_OTLP_ENDPOINT=collector.url ...
        collector.spans()   # [Span(name, trace_id, attributes, resource), ...]

Decoding uses `opentelemetry-proto`, which the project's OTLP exporter already depends on.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from .server import LoopbackServer, Message, Scope, serve_asgi


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    parent_span_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


class FakeCollector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self.requests = 0
        self._server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeCollector has not been started")
        return self._server.url

    def __enter__(self) -> FakeCollector:
        self._server = serve_asgi(self.app)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        if self._server is not None:
            self._server.stop()

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message: Message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        if scope["method"] != "POST" or scope["path"] != "/v1/traces":
            await _answer(send, 404, b"not found", "text/plain")
            return
        if headers.get("content-type", "").split(";")[0].strip() != "application/x-protobuf":
            await _answer(send, 415, b"OTLP/HTTP takes application/x-protobuf here", "text/plain")
            return
        try:
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
        except Exception:  # a body that is not an OTLP request
            await _answer(send, 400, b"body is not an ExportTraceServiceRequest", "text/plain")
            return
        received = [
            Span(span.name, span.trace_id.hex(), span.parent_span_id.hex(), _attributes(span.attributes), _attributes(resource_spans.resource.attributes))
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.requests += 1
            self._spans.extend(received)
        await _answer(send, 200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")


async def _answer(send: Any, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
