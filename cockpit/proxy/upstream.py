"""How a call reaches a model's provider: passed through as it came, or translated by litellm.

A model whose upstream speaks the endpoint's API (an `openai/…` model behind an OpenAI
endpoint) is called directly over one shared HTTP client: the body goes on as the caller sent
it (with the upstream's model name, the output limit the budget hold was sized for, and the
model's `extra_body`), and the answer comes back as JSON data; streams are read event by event.
litellm is left out of that path: its request and response objects, its cost machinery and
its stream wrapper would only add CPU, and the wrapper loses the `finish_reason` of every
choice but the last when `n` > 1. Any other upstream goes through litellm, which translates.

Both give the caller's handler the same thing, an answer as a dict or an async iterator of
stream events as dicts, so everything after the call is written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

import httpx

from cockpit.proxy.endpoints import Endpoint

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
        """The direct route of a deployment, or None when only litellm can call it."""
        upstream = str(deployment.get("model") or "")
        wire = next((w for w in WIRES if upstream.startswith(w.prefixes)), None)
        if wire is None or set(deployment) - PASS_THROUGH_PARAMS:
            return None
        return cls(
            wire.name,
            str(deployment.get("api_base") or wire.default_base).rstrip("/"),
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

    def _request(self, client: httpx.AsyncClient, endpoint: Endpoint, body: Mapping[str, Any], path: str | None = None) -> httpx.Request:
        sent = {**body, **self.extra_body, "model": self.model}
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.wire == "anthropic":
            headers["anthropic-version"] = ANTHROPIC_VERSION
            if self.api_key:
                headers["x-api-key"] = self.api_key
        elif self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return client.build_request(
            "POST", self.url(path or endpoint.upstream_path), content=json.dumps(sent, separators=(",", ":")).encode(),
            headers=headers, timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
        )

    async def answer(self, client: httpx.AsyncClient, endpoint: Endpoint, body: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
        response = await client.send(self._request(client, endpoint, body, path))
        if response.status_code != 200:
            raise UpstreamStatus(response.status_code, _error_text(response.content))
        try:
            answer = response.json()
        except ValueError:
            raise UpstreamStatus(502, "the upstream's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise UpstreamStatus(502, "the upstream's answer is not a JSON object")
        return answer

    async def stream(self, client: httpx.AsyncClient, endpoint: Endpoint, body: Mapping[str, Any]) -> "EventStream":
        response = await client.send(self._request(client, endpoint, body), stream=True)
        if response.status_code != 200:
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            raise UpstreamStatus(response.status_code, _error_text(content))
        return EventStream(response, endpoint.final_events)


class EventStream:
    """The server-sent events of an upstream's streamed answer, as (event name, data) pairs."""

    def __init__(self, response: httpx.Response, final_events: frozenset[str] = frozenset()) -> None:
        self.response = response
        self._iterator = sse_events(_lines(response), final_events)  # one reading of the body

    def __aiter__(self) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
        return self._iterator

    async def aclose(self) -> None:
        await self._iterator.aclose()
        await self.response.aclose()


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    try:
        async for line in response.aiter_lines():
            yield line
    except httpx.HTTPError as exc:
        raise UpstreamStreamBroken(type(exc).__name__) from exc


async def sse_events(lines: AsyncIterator[str], final_events: frozenset[str] = frozenset()) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    """Server-sent events from their lines. `[DONE]` ends the stream, or, for APIs that name
    their events, one of `final_events`; lines that end before either raise
    `UpstreamStreamBroken` (the upstream broke off the answer)."""
    event: str | None = None
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif not line and data:
            text = "\n".join(data)
            data = []
            if text == "[DONE]":
                return
            try:
                parsed = json.loads(text)
            except ValueError:
                raise UpstreamStreamBroken("an event of the upstream's stream is not JSON") from None
            if isinstance(parsed, dict):
                if parsed.get("type") == "error" and isinstance(parsed.get("error"), Mapping):
                    raise UpstreamStreamBroken(f"the upstream sent an error event: {parsed['error'].get('type')}")
                yield event, parsed
                if (event or parsed.get("type")) in final_events:
                    return
            event = None
    raise UpstreamStreamBroken("the upstream's stream ended before its last event")


async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Text lines of a stream of byte chunks (litellm's translated Messages streams are SSE
    frames as bytes)."""
    pending = b""
    async for chunk in chunks:
        pending += chunk if isinstance(chunk, bytes) else str(chunk).encode()
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r").decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")
    yield ""


def _error_text(content: bytes) -> str:
    """The message of an error answer in OpenAI's shape, else its first bytes."""
    try:
        error = json.loads(content).get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    except (ValueError, AttributeError):
        pass
    return content[:500].decode("utf-8", "replace")
