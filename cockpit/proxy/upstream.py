"""How a call reaches a model's provider: passed through as it came, or translated by litellm.

A model whose upstream speaks the endpoint's API (an `openai/…` model behind an OpenAI
endpoint) is called directly over one shared HTTP client (`cockpit.proxy.http1`): the body goes on as the caller sent
it (with the upstream's model name, the output limit the budget hold was sized for, and the
model's `extra_body`), and the answer comes back as JSON data; streams are read event by event.
litellm is left out of that path: its request and response objects, its cost machinery and
its stream wrapper would only add CPU, and the wrapper loses the `finish_reason` of every
choice but the last when `n` > 1. Any other upstream goes through litellm, which translates.

Both give the caller's handler the same thing, an answer as a dict or an async iterator of
stream events as dicts, so everything after the call is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, AsyncIterator, Mapping
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import orjson

from cockpit.proxy.endpoints import Endpoint
from cockpit.proxy.http1 import Client, ConnectError, ReadTimeout, RemoteProtocolError, Response

DEFAULT_TIMEOUT_SECONDS = 600.0
"""litellm's own default, kept for models that name no `timeout`."""
ANTHROPIC_VERSION = "2023-06-01"
"""The Messages API version the gateway speaks (callers' `anthropic-version` is not passed on:
the gateway, not the caller, decides what the upstream is asked)."""


@dataclass(frozen=True)
class Wire:
    """An upstream API family: the model prefixes that speak it and how it is addressed."""

    name: str
    prefixes: tuple[str, ...]
    default_base: str


WIRES = (
    Wire("openai", ("openai/",), "https://api.openai.com/v1"),
    Wire("anthropic", ("anthropic/",), "https://api.anthropic.com"),
)
PASS_THROUGH_PARAMS = frozenset({"model", "api_base", "api_key", "extra_body", "timeout", "num_retries", "max_retries", "input_cost_per_token", "output_cost_per_token"})
"""Deployment parameters the direct path understands; a deployment with any other (an
`api_version`, say) is left to litellm."""


class UpstreamStatus(Exception):
    """An upstream answered with an error status (what `errors.upstream_error` reads)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class UpstreamStreamBroken(Exception):
    """A streamed answer whose connection ended before its last event."""


@dataclass(frozen=True)
class Direct:
    """An upstream called without litellm, in its own API (`wire`)."""

    wire: str
    base_url: str
    model: str
    api_key: str | None
    extra_body: Mapping[str, Any]
    timeout: float

    @classmethod
    def of(cls, deployment: Mapping[str, Any]) -> "Direct | None":
        """The direct route of a deployment, or None when only litellm can call it: another
        API, a parameter the direct path does not understand, or an HTTP proxy configured for
        the upstream's host (the direct client speaks to upstreams directly; litellm's honours
        `HTTPS_PROXY` and `NO_PROXY`)."""
        upstream = str(deployment.get("model") or "")
        wire = next((w for w in WIRES if upstream.startswith(w.prefixes)), None)
        if wire is None or set(deployment) - PASS_THROUGH_PARAMS:
            return None
        base_url = str(deployment.get("api_base") or wire.default_base).rstrip("/")
        if _proxied(base_url):
            return None
        return cls(
            wire.name,
            base_url,
            upstream.split("/", 1)[1],
            deployment.get("api_key"),
            dict(deployment.get("extra_body") or {}),
            float(deployment.get("timeout") or DEFAULT_TIMEOUT_SECONDS),
        )

    def url(self, path: str) -> str:
        """OpenAI's base URLs end in `/v1`, Anthropic's do not (litellm's conventions, which
        the catalog's `api_base` follows); both endpoints' paths are relative to `/v1`."""
        base = self.base_url
        if self.wire == "anthropic" and not base.endswith("/v1"):
            base += "/v1"
        return base + path

    @cached_property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The request headers, built once per deployment."""
        headers = [(b"content-type", b"application/json"), (b"accept", b"application/json")]
        if self.wire == "anthropic":
            headers.append((b"anthropic-version", ANTHROPIC_VERSION.encode()))
            if self.api_key:
                headers.append((b"x-api-key", self.api_key.encode()))
        elif self.api_key:
            headers.append((b"authorization", b"Bearer " + self.api_key.encode()))
        return headers

    async def _send(self, client: Client, endpoint: Endpoint, body: Mapping[str, Any], path: str | None) -> Response:
        sent = orjson.dumps({**body, **self.extra_body, "model": self.model})
        response = await client.send(self.url(path or endpoint.upstream_path), sent, self.headers, timeout=self.timeout, connect_timeout=min(self.timeout, 10.0))
        if response.status != 200:
            try:
                content = await response.read()
            finally:
                response.release()
            raise UpstreamStatus(response.status, _error_text(content))
        return response

    async def answer(self, client: Client, endpoint: Endpoint, body: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
        response = await self._send(client, endpoint, body, path)
        try:
            content = await response.read()
        except RemoteProtocolError as exc:
            raise UpstreamStatus(502, "the upstream's answer broke off") from exc
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise UpstreamStatus(502, "the upstream's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise UpstreamStatus(502, "the upstream's answer is not a JSON object")
        return answer

    async def stream(self, client: Client, endpoint: Endpoint, body: Mapping[str, Any]) -> "EventStream":
        response = await self._send(client, endpoint, body, None)
        return EventStream(response, endpoint.final_events)


def _proxied(base_url: str) -> bool:
    """Whether the environment routes `base_url` through an HTTP proxy."""
    host = urlsplit(base_url).hostname or ""
    scheme = urlsplit(base_url).scheme or "http"
    return scheme in getproxies() and not proxy_bypass(host)


class EventStream:
    """The server-sent events of an upstream's streamed answer, as (event name, data) pairs."""

    def __init__(self, response: Response, final_events: frozenset[str] = frozenset()) -> None:
        self.response = response
        self._iterator = sse_events(_chunks(response), final_events)  # one reading of the body

    def __aiter__(self) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
        return self._iterator

    async def aclose(self) -> None:
        await self._iterator.aclose()
        await self.response.aclose()


async def _chunks(response: Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.iter_chunks():
            yield chunk
    except (RemoteProtocolError, ReadTimeout, ConnectError) as exc:
        raise UpstreamStreamBroken(type(exc).__name__) from exc


async def sse_events(chunks: AsyncIterator[bytes | str], final_events: frozenset[str] = frozenset()) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    """Server-sent events from the chunks of a stream's body. `[DONE]` ends the stream, or, for
    APIs that name their events, one of `final_events`; a body that ends before either raises
    `UpstreamStreamBroken` (the upstream broke off the answer)."""
    event: str | None = None
    data: list[bytes] = []
    pending = b""
    async for chunk in chunks:
        pending += chunk if isinstance(chunk, bytes) else str(chunk).encode()
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
                continue
            if line.startswith(b"event:"):
                event = line[6:].strip().decode("utf-8", "replace")
                continue
            if line or not data:
                continue
            text = data[0] if len(data) == 1 else b"\n".join(data)
            data = []
            if text == b"[DONE]":
                return
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise UpstreamStreamBroken("an event of the upstream's stream is not JSON") from None
            if isinstance(parsed, dict):
                if parsed.get("type") == "error" and isinstance(parsed.get("error"), dict):
                    raise UpstreamStreamBroken(f"the upstream sent an error event: {parsed['error'].get('type')}")
                yield event, parsed
                if (event or parsed.get("type")) in final_events:
                    return
            event = None
    raise UpstreamStreamBroken("the upstream's stream ended before its last event")


def _error_text(content: bytes) -> str:
    """The message of an error answer in OpenAI's shape, else its first bytes."""
    try:
        error = orjson.loads(content).get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return content[:500].decode("utf-8", "replace")
