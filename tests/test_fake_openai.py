"""The fake OpenAI upstream answers as the Chat Completions API documents, deterministically.

Tests elsewhere compute expected tokens and costs from its word-count rule, and the proxy's
streaming and retry code is exercised against its SSE and fault switches, so these pin both the
wire shapes and the rule; the last tests check that litellm, the proxy's client, reads it as a
real provider (usage, cost) and that it runs standalone under uvicorn for the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes.openai import DEFAULT_API_KEY, FakeOpenAI, serve_openai

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")  # before litellm is imported, below

FAKE_SCRIPT = Path(__file__).parent / "fakes" / "openai.py"
REPLY = "Hello from the fake upstream."  # 5 words
INPUT_COST, OUTPUT_COST = 1e-6, 2e-6


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def api(fake: FakeOpenAI) -> Iterator[httpx.Client]:
    fake.reset()
    headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
    with httpx.Client(base_url=fake.url, headers=headers, timeout=10) as client:
        yield client
    fake.reset()


def chat(api: httpx.Client, content: Any = "one two three", **extra: Any) -> httpx.Response:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": content}], **extra}
    return api.post("/chat/completions", json=body)


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of an event stream, in order."""
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(event.startswith("data: ") for event in events), events
    return [event[len("data: ") :] for event in events]


def assert_openai_error(response: httpx.Response, status: int, type_: str, code: Any) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert (error["type"], error["code"]) == (type_, code)


def test_completion_shape_and_usage(api: httpx.Client, fake: FakeOpenAI) -> None:
    parts = [
        {"type": "text", "text": "hello  there\nfriend"},  # 3 words
        {"type": "image_url", "image_url": {"url": "not counted"}},
    ]
    messages = [
        {"role": "system", "content": "You are terse."},  # 3 words
        {"role": "user", "content": parts},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "and again"},  # 2 words
    ]
    response = api.post("/chat/completions", json={"model": "my-model", "messages": messages})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    completion = response.json()
    assert completion["id"].startswith("chatcmpl-")
    assert completion["object"] == "chat.completion"
    assert isinstance(completion["created"], int)
    assert abs(completion["created"] - time.time()) < 60
    assert completion["model"] == "my-model"
    [choice] = completion["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == REPLY
    assert choice["finish_reason"] == "stop"
    usage = completion["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (8, 5, 13)
    assert fake.answer({"messages": messages}).prompt_tokens == 8

    [received] = fake.requests
    assert received.body == {"model": "my-model", "messages": messages}
    assert received.authorization == f"Bearer {DEFAULT_API_KEY}"


def test_echo_and_reply(api: httpx.Client, fake: FakeOpenAI) -> None:
    answer = chat(api, [{"type": "text", "text": "echo:   a b   c  "}]).json()
    assert answer["choices"][0]["message"]["content"] == "a b c"
    assert answer["usage"]["completion_tokens"] == 3
    assert answer["usage"]["prompt_tokens"] == 4  # "echo:" counts

    fake.reply = "Just two"
    try:
        assert chat(api).json()["choices"][0]["message"]["content"] == "Just two"
    finally:
        fake.reply = REPLY


def test_stream_chunks_usage_and_done(api: httpx.Client) -> None:
    response = chat(api, stream=True, stream_options={"include_usage": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    *events, done = sse_events(response.text)
    assert done == "[DONE]"
    chunks = [json.loads(event) for event in events]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["model"] for chunk in chunks} == {"fake-model"}

    first, *words, last_choice, usage_chunk = chunks
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert first["choices"][0]["delta"]["content"] == ""
    deltas = [chunk["choices"][0]["delta"]["content"] for chunk in words]
    assert deltas == ["Hello", " from", " the", " fake", " upstream."]
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in [first, *words])
    assert last_choice["choices"][0]["delta"] == {}
    assert last_choice["choices"][0]["finish_reason"] == "stop"
    assert all(chunk["usage"] is None for chunk in chunks[:-1])  # as OpenAI, with include_usage
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (3, 5, 8)


def test_stream_without_include_usage_has_no_usage(api: httpx.Client) -> None:
    *events, done = sse_events(chat(api, stream=True).text)
    chunks = [json.loads(event) for event in events]
    assert done == "[DONE]"
    assert len(chunks) == 1 + 5 + 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)


def test_max_tokens_cuts_the_answer(api: httpx.Client) -> None:
    completion = chat(api, max_tokens=2).json()
    assert completion["choices"][0]["message"]["content"] == "Hello from"
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == 2
    assert completion["usage"]["total_tokens"] == 5

    completion = chat(api, max_completion_tokens=3, max_tokens=100).json()
    assert completion["choices"][0]["message"]["content"] == "Hello from the"
    assert completion["choices"][0]["finish_reason"] == "length"

    completion = chat(api, max_tokens=5).json()  # exactly enough: not cut
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["completion_tokens"] == 5

    *events, _ = sse_events(
        chat(api, max_tokens=1, stream=True, stream_options={"include_usage": True}).text
    )
    chunks = [json.loads(event) for event in events]
    assert [chunk["choices"][0]["delta"].get("content") for chunk in chunks[1:-2]] == ["Hello"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 1

    too_few = chat(api, max_tokens=0)
    assert_openai_error(too_few, 400, "invalid_request_error", "integer_below_min_value")


def test_authentication(api: httpx.Client, fake: FakeOpenAI) -> None:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({}, {"Authorization": "Bearer sk-wrong-key-1234"}, {"Authorization": "sk"}):
        response = httpx.post(f"{fake.url}/chat/completions", json=body, headers=headers)
        assert_openai_error(response, 401, "invalid_request_error", "invalid_api_key")
        assert response.json()["error"]["param"] is None
    assert [r.authorization for r in fake.requests] == [None, "Bearer sk-wrong-key-1234", "sk"]
    assert httpx.get(f"{fake.url}/models").status_code == 401


def test_bad_requests(api: httpx.Client) -> None:
    headers = {"Content-Type": "application/json"}
    response = api.post("/chat/completions", content=b"{not json", headers=headers)
    assert_openai_error(response, 400, "invalid_request_error", None)
    response = api.post("/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert_openai_error(response, 400, "invalid_request_error", None)
    response = api.post("/chat/completions", json={"model": "fake-model"})
    assert_openai_error(response, 400, "invalid_request_error", "missing_required_parameter")
    assert response.json()["error"]["param"] == "messages"
    assert_openai_error(api.post("/nope", json={}), 404, "invalid_request_error", None)


def test_models(api: httpx.Client, fake: FakeOpenAI) -> None:
    listing = api.get("/models").json()
    assert listing["object"] == "list"
    assert [model["id"] for model in listing["data"]] == fake.models
    for model in listing["data"]:
        assert model["object"] == "model"
        assert isinstance(model["created"], int)
        assert model["owned_by"]
    assert api.get("/models/fake-model").json()["id"] == "fake-model"
    assert_openai_error(api.get("/models/nope"), 404, "invalid_request_error", "model_not_found")


def test_fail_next(api: httpx.Client, fake: FakeOpenAI) -> None:
    fake.fail_next(429)
    response = chat(api)
    assert_openai_error(response, 429, "rate_limit_error", "rate_limit_exceeded")
    assert response.headers["retry-after"] == "1"
    assert chat(api).status_code == 200

    fake.fail_next(503, count=2)
    fake.fail_next(500)
    statuses = [chat(api).status_code for _ in range(4)]
    assert statuses == [503, 503, 500, 200]
    fake.fail_next(502)
    assert_openai_error(chat(api), 502, "server_error", None)
    assert len(fake.requests) == 7  # failed calls are recorded too

    fake.fail_next(500, count=3)
    fake.reset()
    assert chat(api).status_code == 200
    assert len(fake.requests) == 1


def test_cut_stream(api: httpx.Client, fake: FakeOpenAI) -> None:
    fake.cut_stream_after(3)
    assert chat(api).status_code == 200  # a non-streamed call does not use the cut up
    received = b""
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with pytest.raises(httpx.RemoteProtocolError):
        with api.stream("POST", "/chat/completions", json=body) as response:
            assert response.status_code == 200
            for data in response.iter_raw():
                received += data
    events = sse_events(received.decode())
    assert len(events) == 3
    assert "[DONE]" not in events

    assert sse_events(chat(api, stream=True).text)[-1] == "[DONE]"  # only the next one is cut


def test_delay(api: httpx.Client, fake: FakeOpenAI) -> None:
    fake.delay = 0.3
    started = time.monotonic()
    assert chat(api).status_code == 200
    assert time.monotonic() - started >= 0.3
    fake.delay = 0.0


def test_serve_openai_restarts_on_the_same_port() -> None:
    fake = serve_openai(api_key="k", reply="x y")
    try:
        url = fake.url
        assert url.endswith("/v1")
        body = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
        headers = {"Authorization": "Bearer k"}
        assert httpx.post(f"{url}/chat/completions", json=body, headers=headers).status_code == 200
        fake.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{url}/chat/completions", json=body, headers=headers)
        fake.start()
        assert fake.url == url
        answer = httpx.post(f"{url}/chat/completions", json=body, headers=headers).json()
        assert answer["choices"][0]["message"]["content"] == "x y"
    finally:
        fake.stop()


def expected_cost(prompt_tokens: int, completion_tokens: int) -> float:
    return prompt_tokens * INPUT_COST + completion_tokens * OUTPUT_COST


def test_litellm_router_reads_usage_and_cost(fake: FakeOpenAI) -> None:
    import litellm

    fake.reset()
    router = litellm.Router(
        model_list=[
            {
                "model_name": "m",
                "litellm_params": {
                    "model": "openai/fake-model",
                    "api_base": fake.url,
                    "api_key": fake.api_key,
                    "input_cost_per_token": INPUT_COST,
                    "output_cost_per_token": OUTPUT_COST,
                },
            }
        ]
    )
    messages = [{"role": "user", "content": "how are you today"}]  # 4 words; reply: 5

    async def calls() -> tuple[Any, list[Any]]:
        response = await router.acompletion(model="m", messages=messages)
        stream = await router.acompletion(
            model="m", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        return response, [chunk async for chunk in stream]

    response, chunks = asyncio.run(calls())

    assert response.choices[0].message.content == REPLY
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (4, 5)
    assert response._hidden_params["response_cost"] == pytest.approx(expected_cost(4, 5))

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    last = chunks[-1]  # the usage arrives alone in the last chunk, with no choices
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (4, 5)
    assert last._hidden_params["response_cost"] == pytest.approx(expected_cost(4, 5))

    upstream_calls = fake.requests
    assert [r.body["model"] for r in upstream_calls] == ["fake-model", "fake-model"]
    assert upstream_calls[1].body["stream_options"] == {"include_usage": True}
    assert {r.authorization for r in upstream_calls} == {f"Bearer {fake.api_key}"}


def test_runs_standalone_under_uvicorn() -> None:
    process = subprocess.Popen(
        [sys.executable, str(FAKE_SCRIPT), "--port", "0", "--reply", "standalone ok"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), url
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
        response = httpx.post(f"{url}/chat/completions", json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        *events, done = sse_events(response.text)
        assert done == "[DONE]"
        words = [json.loads(event)["choices"][0]["delta"].get("content") for event in events]
        assert words == ["", "standalone", " ok", None]
    finally:
        process.terminate()
        process.wait(timeout=10)
