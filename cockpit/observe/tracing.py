"""OpenTelemetry traces, on only when `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector.

`span(name, attributes)` is what code writes around a step (auth, policy, guardrails,
budget, upstream). With tracing off it returns one shared do-nothing context manager: no
OpenTelemetry import, no allocation beyond the call itself. With tracing on, spans go to the
collector over OTLP/HTTP (`{endpoint}/v1/traces`, protobuf) in batches from a background
thread, so a slow collector never holds a request. The exporter reads the usual
`OTEL_EXPORTER_OTLP_*` variables (headers, timeout, `OTEL_SERVICE_NAME`).

Attribute names of LLM calls follow OpenTelemetry's GenAI semantic conventions (the `GEN_AI_*`
constants below); never put an e-mail address, a key or prompt text in an attribute.
"""

from __future__ import annotations

from typing import Any, Mapping

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
"""chat, text_completion, embeddings, ... (the endpoint's operation)."""
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
ERROR_TYPE = "error.type"


class _NoSpan:
    """The span of disabled tracing: accepts everything, records nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        return None

    def record_exception(self, exception: BaseException) -> None:
        return None


NO_SPAN = _NoSpan()
_tracer: Any = None
_provider: Any = None


def span(name: str, attributes: Mapping[str, Any] | None = None, **more: Any) -> Any:
    """A context manager around one step; it gives the span (`set_attribute` on it after the
    call, e.g. the usage). Attribute values must be str, bool, int or float."""
    if _tracer is None:
        return NO_SPAN
    merged = {**attributes, **more} if attributes else more
    return _tracer.start_as_current_span(name, attributes={k: v for k, v in merged.items() if v is not None})


def enabled() -> bool:
    return _tracer is not None


def configure_tracing(environ: Mapping[str, str], service_name: str = "cockpit") -> bool:
    """Start exporting spans when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; say whether it did.
    Called once per process (each worker of `cockpit serve`)."""
    global _tracer, _provider
    endpoint = (environ.get(ENDPOINT_VARIABLE) or "").strip()
    if not endpoint or _tracer is not None:
        return _tracer is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from cockpit import __version__

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or service_name, "service.version": __version__})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    _provider = provider  # not installed globally: `shutdown_tracing` can turn it off again
    _tracer = provider.get_tracer("cockpit")
    return True


def flush_tracing() -> None:
    """Send the spans still batched (at shutdown, and in tests)."""
    if _provider is not None:
        _provider.force_flush()


def shutdown_tracing() -> None:
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def current_trace_id() -> str | None:
    """The trace id of the span running now, as hex, for log lines; None when off."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
