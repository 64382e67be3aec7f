"""Every endpoint of the gateway through the one governed path, directly and through litellm.

`cockpit serve` (real uvicorn) in front of the fake OpenAI upstream: `openai/…` models are
called directly (the body passed through), `hosted_vllm/…` models through litellm, which
translates. Model access, guardrails and budgets are enforced the same on every endpoint, and
each call leaves one ledger row, charged exactly, that names its endpoint.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from cockpit.proxy.endpoints import ROUTING_PARAMETERS
from fakes.openai import FakeOpenAI
from harness.cockpit import Cockpit
from harness.proxy import LEDGER_PLACES, InProcessServer, issue_key, ledger_rows, tenant

EXTRA_MODELS = """
---
apiVersion: cockpit/v1
kind: Model
name: vllm
litellm: {model: hosted_vllm/vllm-model, api_base: "UPSTREAM", api_key: "${env:FAKE_OPENAI_KEY}"}
pricing: {input_per_million: 2.5, output_per_million: 10}
---
apiVersion: cockpit/v1
kind: Model
name: dense
litellm: {model: openai/dense-model, api_base: "UPSTREAM", api_key: "${env:FAKE_OPENAI_KEY}"}
pricing: {input_per_million: 1000000, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: ModelAccess
account: acme
domain: copilot
grants: [{model: vllm, scope: org:research}, {model: dense, scope: org:research}]
"""
PRICED = {"priced": (Decimal("2.5"), Decimal(10)), "vllm": (Decimal("2.5"), Decimal(10))}
"""Input and output prices per million tokens of the models whose charges are checked."""
FACTOR = Decimal("1.25")


@pytest.fixture
def applied(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI) -> Cockpit:
    monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    runner.write(tenant(upstream.url) + EXTRA_MODELS.replace("UPSTREAM", upstream.url))
    result = runner.apply()
    assert result.exit_code == 0, result.output
    return runner


@pytest.fixture
def server(applied: Cockpit) -> Iterator[InProcessServer]:
    with InProcessServer(applied.url, {"REDIS_URL": ""}) as running:
        yield running


def post(base: str, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{base}{path}", headers={"Authorization": f"Bearer {key}"}, json=body, timeout=30)


def expected_credits(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
    input_price, output_price = PRICED[model]
    raw = ((prompt_tokens * input_price + completion_tokens * output_price) / Decimal(1_000_000)).quantize(LEDGER_PLACES)
    return (raw * FACTOR).quantize(LEDGER_PLACES)


def sse(response: httpx.Response) -> list[Any]:
    events = [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", response.text
    return [json.loads(event) for event in events[:-1]]


ROUTES = ("priced", "vllm")  # direct, translated by litellm


@pytest.mark.parametrize("model", ROUTES)
def test_embeddings_answer_vectors_and_charge_their_input_exactly(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI, model: str) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    response = post(server.url, bob, "/v1/embeddings", {"model": model, "input": ["one two three", "four five"]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "list" and [item["index"] for item in answer["data"]] == [0, 1]
    assert all(len(item["embedding"]) == 8 for item in answer["data"]) and answer["model"] == model
    assert answer["usage"]["prompt_tokens"] == 5
    sent = upstream.requests[-1].body
    assert sent["input"] == ["one two three", "four five"] and "max_tokens" not in sent
    server.flush()
    [row] = ledger_rows(applied.url)
    assert row.metadata["endpoint"] == "embeddings" and row.metadata["prompt_tokens"] == 5
    assert Decimal(str(row.credits)) == expected_credits(model, 5, 0)
    assert uuid.UUID(response.headers["x-cockpit-request-id"]) == uuid.UUID(str(row.id))


@pytest.mark.parametrize("model", ROUTES)
def test_legacy_completions_plain_and_streamed_are_charged_exactly(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI, model: str) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    upstream.reply = "alpha beta gamma"
    plain = post(server.url, bob, "/v1/completions", {"model": model, "prompt": "say three words", "max_tokens": 10})
    assert plain.status_code == 200, plain.text
    assert plain.json()["choices"][0]["text"] == "alpha beta gamma" and plain.json()["model"] == model
    with httpx.stream("POST", f"{server.url}/v1/completions", headers={"Authorization": f"Bearer {bob}"},
                      json={"model": model, "prompt": "say three words", "max_tokens": 10, "stream": True, "stream_options": {"include_usage": True}}, timeout=30) as streamed:
        streamed.read()
    assert streamed.status_code == 200, streamed.text
    events = sse(streamed)
    assert "".join(choice.get("text", "") for event in events for choice in event.get("choices", [])) == "alpha beta gamma"
    assert events[-1]["usage"]["completion_tokens"] == 3
    server.flush()
    rows = ledger_rows(applied.url)
    assert [row.metadata["endpoint"] for row in rows] == ["completions", "completions"]
    assert [row.metadata["stream"] for row in rows] == [False, True]
    for row in rows:
        assert Decimal(str(row.credits)) == expected_credits(model, 3, 3)


def test_a_streamed_n2_answer_keeps_every_choices_finish_reason(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    upstream.reply = "one two three"
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"},
                      json={"model": "priced", "n": 2, "max_tokens": 2, "stream": True, "messages": [{"role": "user", "content": "count"}]}, timeout=30) as response:
        response.read()
    events = sse(response)
    finished = {choice["index"]: choice["finish_reason"] for event in events for choice in event["choices"] if choice.get("finish_reason")}
    assert finished == {0: "length", 1: "length"}
    texts = {index: "".join(c["delta"].get("content") or "" for e in events for c in e["choices"] if c["index"] == index) for index in (0, 1)}
    assert texts == {0: "one two", 1: "one two"}
    server.flush()
    [row] = ledger_rows(applied.url)
    assert Decimal(str(row.credits)) == expected_credits("priced", 1, 4)


def test_paths_without_the_v1_prefix_are_the_same_endpoints(server: InProcessServer, applied: Cockpit) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    assert post(server.url, bob, "/embeddings", {"model": "priced", "input": "x"}).status_code == 200
    assert post(server.url, bob, "/completions", {"model": "priced", "prompt": "x", "max_tokens": 1}).status_code == 200
    assert post(server.url, bob, "/chat/completions", {"model": "priced", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}).status_code == 200


CALLS = {
    "/v1/chat/completions": lambda model, text: {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 2},
    "/v1/completions": lambda model, text: {"model": model, "prompt": text, "max_tokens": 2},
    "/v1/embeddings": lambda model, text: {"model": model, "input": [text]},
    "/v1/responses": lambda model, text: {"model": model, "input": text, "max_output_tokens": 2},
}


@pytest.mark.parametrize("path", CALLS)
def test_access_guardrails_and_budgets_hold_on_every_endpoint(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI, path: str) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    alice = issue_key(applied.url, "alice@acme.com")
    make = CALLS[path]
    denied = post(server.url, bob, path, make("locked", "hello"))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "model_not_allowed", denied.text
    blocked = post(server.url, bob, path, make("priced", "my number is 123-45-6789"))
    assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "guardrail_blocked", blocked.text
    for model in ROUTES:  # the same on the translated path
        assert post(server.url, bob, path, make(model, "my number is 123-45-6789")).json()["error"]["code"] == "guardrail_blocked"
    # alice has 5 credits; `dense` costs 1.25 credits per token, so any request's bound exceeds them.
    broke = post(server.url, alice, path, make("dense", "hello"))
    assert broke.status_code == 429 and broke.json()["error"]["code"] == "insufficient_quota", broke.text
    assert "user:alice@acme.com" in broke.json()["error"]["message"]
    assert upstream.requests == []
    allowed = post(server.url, bob, path, make("priced", "hello"))
    assert allowed.status_code == 200, allowed.text
    server.flush()
    assert [row.metadata["endpoint"] for row in ledger_rows(applied.url)][-1] == path.removeprefix("/v1/").replace("/", ".")


NAMED_ROUTING_KEYWORDS = {"api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "extra_headers", "mock_response"}
"""The keywords that would reroute a call or reveal its credentials, named here so that dropping
one from the gateway's list fails this test."""


def test_routing_keywords_are_refused_on_every_route(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    assert NAMED_ROUTING_KEYWORDS <= ROUTING_PARAMETERS
    bob = issue_key(applied.url, "bob@acme.com")
    passed = []
    for parameter in sorted(ROUTING_PARAMETERS):
        for path, make in CALLS.items():
            for model in ROUTES:
                refused = post(server.url, bob, path, {**make(model, "hello"), parameter: "http://127.0.0.1:9/v1"})
                error = refused.json()["error"] if refused.status_code == 400 else {}
                if error.get("code") != "forbidden_parameter" or parameter not in error.get("message", ""):
                    passed.append((parameter, path, model, refused.status_code))
    assert passed == []
    assert upstream.requests == []


def test_bookkeeping_fields_are_accepted_and_passed_on(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    fields = {"metadata": {"ticket": "T-1"}, "store": False, "user": "bob", "prompt_cache_key": "k1", "safety_identifier": "s1"}
    answer = post(server.url, bob, "/v1/chat/completions", {**CALLS["/v1/chat/completions"]("priced", "hello"), **fields})
    assert answer.status_code == 200, answer.text
    sent = upstream.requests[-1].body
    assert {name: sent.get(name) for name in fields} == fields
    assert sent["model"] == "priced-model"


def test_the_official_openai_sdk_is_served_on_every_endpoint(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=issue_key(applied.url, "bob@acme.com"), max_retries=0)
    upstream.reply = "from the sdk"
    chat = client.chat.completions.create(model="priced", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert chat.choices[0].message.content == "from the sdk" and chat.model == "priced"
    streamed = client.chat.completions.create(model="vllm", messages=[{"role": "user", "content": "hi"}], max_tokens=5, stream=True, stream_options={"include_usage": True})
    chunks = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "from the sdk"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    legacy = client.completions.create(model="priced", prompt="hi", max_tokens=5)
    assert legacy.choices[0].text == "from the sdk"
    vectors = client.embeddings.create(model="vllm", input=["a b", "c"])
    assert len(vectors.data) == 2 and vectors.usage.prompt_tokens == 3
    assert client.models.retrieve("priced").id == "priced"
    assert [model.id for model in client.models.list()] == ["chat", "dense", "priced", "vllm"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("locked")  # exists, but not for bob
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="locked", input="x")
    server.flush()
    endpoints = [row.metadata["endpoint"] for row in ledger_rows(applied.url)]
    assert endpoints == ["chat.completions", "chat.completions", "completions", "embeddings"]


@pytest.mark.parametrize("model", ROUTES)
def test_responses_plain_and_streamed_are_screened_and_charged_exactly(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI, model: str) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    upstream.reply = "alpha beta gamma"
    plain = post(server.url, bob, "/v1/responses", {"model": model, "input": "say three words", "instructions": "be brief", "max_output_tokens": 10})
    assert plain.status_code == 200, plain.text
    answer = plain.json()
    assert answer["model"] == model and answer["usage"]["output_tokens"] == 3
    assert [part["text"] for item in answer["output"] if item["type"] == "message" for part in item["content"]] == ["alpha beta gamma"]
    with httpx.stream("POST", f"{server.url}/v1/responses", headers={"Authorization": f"Bearer {bob}"},
                      json={"model": model, "input": [{"role": "user", "content": [{"type": "input_text", "text": "say three words"}]}], "max_output_tokens": 10, "stream": True}, timeout=30) as streamed:
        streamed.read()
    assert streamed.status_code == 200, streamed.text
    names = [line[len("event: "):] for line in streamed.text.splitlines() if line.startswith("event: ")]
    events = [json.loads(line[len("data: "):]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert names[0] == "response.created" and names[-1] == "response.completed" and "[DONE]" not in streamed.text
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "alpha beta gamma"
    assert events[-1]["response"]["usage"]["output_tokens"] == 3 and events[-1]["response"]["model"] == model
    server.flush()
    rows = ledger_rows(applied.url)
    assert [(row.metadata["endpoint"], row.metadata["stream"]) for row in rows] == [("responses", False), ("responses", True)]
    prompts = [row.metadata["prompt_tokens"] for row in rows]
    for row, prompt in zip(rows, prompts):
        assert Decimal(str(row.credits)) == expected_credits(model, prompt, 3)
    if model == "priced":  # the fake counts words: input 3, instructions 2
        assert prompts == [5, 3]


def test_responses_whose_cost_the_body_does_not_show_are_refused(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    for extra in ({"previous_response_id": "resp_123"}, {"conversation": "conv_1"}, {"prompt": {"id": "pmpt_1"}}, {"background": True},
                  {"tools": [{"type": "web_search"}]}, {"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}):
        refused = post(server.url, bob, "/v1/responses", {"model": "priced", "input": "hi", **extra})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_parameter", (extra, refused.text)
    by_id = post(server.url, bob, "/v1/responses", {"model": "priced", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]})
    assert by_id.status_code == 400 and by_id.json()["error"]["code"] == "unsupported_content"
    assert upstream.requests == []
    tools = post(server.url, bob, "/v1/responses", {"model": "priced", "input": "hi", "max_output_tokens": 3, "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]})
    assert tools.status_code == 200, tools.text


def test_a_user_sees_their_own_spend_and_whats_left(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    alice = issue_key(applied.url, "alice@acme.com")
    bob = issue_key(applied.url, "bob@acme.com")
    for path, make in CALLS.items():
        assert post(server.url, alice, path, make("priced", "hello")).status_code == 200
    assert post(server.url, bob, "/v1/embeddings", {"model": "priced", "input": "bob's own"}).status_code == 200
    server.flush()
    mine = httpx.get(f"{server.url}/v1/me/usage", headers={"Authorization": f"Bearer {alice}"}).json()
    rows = [row for row in ledger_rows(applied.url) if row.user_email == "alice@acme.com"]
    assert mine["user"] == "alice@acme.com" and mine["domain"] == "copilot"
    assert sorted(s["endpoint"] for s in mine["spend"]) == sorted(path.removeprefix("/v1/").replace("/", ".") for path in CALLS)
    assert all(s["model"] == "priced" and s["requests"] == 1 for s in mine["spend"])
    assert Decimal(str(mine["total_credits"])) == sum(Decimal(str(row.credits)) for row in rows)
    limits = {limit["scope"]: limit for limit in mine["limits"]}
    assert set(limits) == {"user:alice@acme.com", "team:research/ml", "account"}
    own = limits["user:alice@acme.com"]
    assert own["limit"] == 5 and Decimal(str(own["used"])) == sum(Decimal(str(row.credits)) for row in rows)
    assert abs(own["remaining"] - (5 - own["used"])) < 1e-8
    team = limits["team:research/ml"]  # alice and bob are both in research/ml
    assert team["used"] > own["used"]
    assert httpx.get(f"{server.url}/v1/me/usage").status_code == 401


@pytest.mark.parametrize("reported, expected", [
    (-5000, 0),  # a negative count would be a refund: a tenant's own upstream could raise its budget
    (float("-inf"), 0),
    (float("nan"), 0),
    (True, 0),
    ("12", 0),
    (12.9, 12),
    (float("inf"), 1 << 40),
    (10**30, 1 << 40),  # past what JSON, the spool and the ledger can carry
])
def test_usage_an_upstream_reports_is_a_whole_number_from_zero_to_a_ceiling(reported: Any, expected: int) -> None:
    from cockpit.proxy.endpoints import anthropic_usage, openai_usage, responses_usage

    assert openai_usage({"usage": {"prompt_tokens": reported, "completion_tokens": reported}}) == openai_usage({"usage": {"prompt_tokens": expected, "completion_tokens": expected}})
    assert openai_usage({"usage": {"prompt_tokens": reported}}).input_tokens == expected
    assert responses_usage({"response": {"usage": {"input_tokens": 1, "output_tokens": reported}}}).output_tokens == expected
    assert anthropic_usage({"type": "message_delta", "usage": {"output_tokens": reported}}).output_tokens == expected
