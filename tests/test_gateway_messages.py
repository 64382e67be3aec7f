"""Anthropic's Messages API through the gateway: passed through to Anthropic models (the fake
Anthropic upstream), translated by litellm for OpenAI ones (the fake OpenAI upstream), and an
Anthropic model behind OpenAI's chat completions; each governed and charged exactly, as the
official anthropic SDK sees it."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx
import pytest

from fakes.anthropic import FakeAnthropic, serve_anthropic
from fakes.openai import FakeOpenAI
from harness.cockpit import Cockpit
from harness.proxy import LEDGER_PLACES, InProcessServer, issue_key, ledger_rows, tenant

CLAUDE = """
---
apiVersion: cockpit/v1
kind: Model
name: claude
litellm: {model: anthropic/claude-fake, api_base: "CLAUDE_BASE", api_key: "${env:FAKE_ANTHROPIC_KEY}"}
pricing: {input_per_million: 3, output_per_million: 15}
---
apiVersion: cockpit/v1
kind: Model
name: claude-cached
litellm: {model: anthropic/claude-fake, api_base: "CLAUDE_BASE", api_key: "${env:FAKE_ANTHROPIC_KEY}"}
pricing: {input_per_million: 3, output_per_million: 15, cached_input_per_million: 0.3}
---
apiVersion: cockpit/v1
kind: ModelAccess
account: acme
domain: copilot
grants: [{model: claude, scope: org:research}, {model: claude-cached, scope: org:research}]
"""
PRICES = {"claude": (Decimal(3), Decimal(15)), "priced": (Decimal("2.5"), Decimal(10))}
FACTOR = Decimal("1.25")


def credits_for(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    input_price, output_price = PRICES[model]
    raw = ((input_tokens * input_price + output_tokens * output_price) / Decimal(1_000_000)).quantize(LEDGER_PLACES)
    return (raw * FACTOR).quantize(LEDGER_PLACES)


@pytest.fixture
def claude() -> Iterator[FakeAnthropic]:
    fake = serve_anthropic()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def applied(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI, claude: FakeAnthropic) -> Cockpit:
    monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", claude.api_key)
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    runner.write(tenant(upstream.url) + CLAUDE.replace("CLAUDE_BASE", claude.url))
    result = runner.apply()
    assert result.exit_code == 0, result.output
    return runner


@pytest.fixture
def server(applied: Cockpit) -> Iterator[InProcessServer]:
    with InProcessServer(applied.url, {"REDIS_URL": ""}) as running:
        yield running


def sdk(server: InProcessServer, applied: Cockpit, user: str = "bob@acme.com") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=issue_key(applied.url, user), max_retries=0)


def test_messages_pass_through_to_anthropic_plain_and_streamed(server: InProcessServer, applied: Cockpit, claude: FakeAnthropic) -> None:
    client = sdk(server, applied)
    claude.reply = "one two three"
    claude.cache_read = 2
    message = client.messages.create(model="claude", max_tokens=10, system="be brief", messages=[{"role": "user", "content": "count to three please"}])
    assert message.content[0].text == "one two three" and message.model == "claude"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (4, 2, 3)
    sent = claude.requests[-1]
    assert sent.body["model"] == "claude-fake" and sent.headers["x-api-key"] == claude.api_key and sent.headers["anthropic-version"]
    with client.messages.stream(model="claude", max_tokens=2, messages=[{"role": "user", "content": "count to three please"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two" and final.stop_reason == "max_tokens" and final.usage.output_tokens == 2
    server.flush()
    rows = ledger_rows(applied.url)
    assert [(row.metadata["endpoint"], row.metadata["stream"]) for row in rows] == [("messages", False), ("messages", True)]
    # Cached input is input: 4 + 2 read from the cache, then 2 + 2 (the system prompt is gone).
    assert [Decimal(str(row.credits)) for row in rows] == [credits_for("claude", 6, 3), credits_for("claude", 4, 2)]
    assert rows[0].metadata["cached_prompt_tokens"] == 2


def test_messages_for_an_openai_model_are_translated_by_litellm(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    client = sdk(server, applied)
    upstream.reply = "alpha beta gamma"
    message = client.messages.create(model="priced", max_tokens=10, messages=[{"role": "user", "content": "say three words"}])
    assert message.content[0].text == "alpha beta gamma"
    assert upstream.requests[-1].body["max_tokens"] == 10  # chat completions upstream, the hold's limit
    with client.messages.stream(model="priced", max_tokens=10, messages=[{"role": "user", "content": "say three words"}]) as stream:
        assert "".join(stream.text_stream) == "alpha beta gamma"
    server.flush()
    rows = ledger_rows(applied.url)
    assert [row.metadata["endpoint"] for row in rows] == ["messages", "messages"]
    for row in rows:
        assert Decimal(str(row.credits)) == credits_for("priced", 3, 3)


def test_an_anthropic_model_behind_chat_completions_is_translated(server: InProcessServer, applied: Cockpit, claude: FakeAnthropic) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    claude.reply = "hello back"
    answer = httpx.post(f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"},
                        json={"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hello there"}]}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "hello back"
    server.flush()
    [row] = ledger_rows(applied.url)
    assert row.metadata["endpoint"] == "chat.completions" and Decimal(str(row.credits)) == credits_for("claude", 2, 2)


def test_messages_are_governed_and_errors_come_in_anthropics_shape(server: InProcessServer, applied: Cockpit, claude: FakeAnthropic) -> None:
    client = sdk(server, applied)
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        client.messages.create(model="locked", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert denied.value.body["type"] == "error" and "locked" in denied.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as blocked:
        client.messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": "my ssn is 123-45-6789"}])
    assert "guardrail" in blocked.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": "hi"}], tools=[{"type": "web_search_20250305", "name": "web_search"}])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}]}])
    alice = issue_key(applied.url, "alice@acme.com")  # 5 credits; a million output tokens cost 18.75
    broke = httpx.post(f"{server.url}/v1/messages", headers={"x-api-key": alice}, json={"model": "claude", "max_tokens": 1_000_000, "messages": [{"role": "user", "content": "hi"}]})
    assert broke.status_code == 429 and broke.json()["error"]["type"] == "rate_limit_error"
    assert "user:alice@acme.com" in broke.json()["error"]["message"]
    assert claude.requests == []
    # The SDK authenticates with x-api-key; the gateway takes it as it takes a bearer key.
    key = issue_key(applied.url, "bob@acme.com")
    plain = httpx.post(f"{server.url}/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                       json={"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert plain.status_code == 200, plain.text
    assert uuid.UUID(plain.headers["x-cockpit-request-id"])
    assert httpx.post(f"{server.url}/v1/messages", headers={"x-api-key": "nope"}, json={"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).status_code == 401


def test_count_tokens_asks_anthropic_or_counts_locally_and_charges_nothing(server: InProcessServer, applied: Cockpit, claude: FakeAnthropic) -> None:
    client = sdk(server, applied)
    counted = client.messages.count_tokens(model="claude", system="be brief", messages=[{"role": "user", "content": "count these four words"}])
    assert counted.input_tokens == 6 and claude.requests[-1].path == "/v1/messages/count_tokens"
    local = client.messages.count_tokens(model="priced", messages=[{"role": "user", "content": "count these four words"}])
    assert local.input_tokens > 0
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.count_tokens(model="locked", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="claude", messages=[{"role": "user", "content": "123-45-6789"}])
    server.flush()
    assert ledger_rows(applied.url) == []


def test_cached_input_is_charged_at_the_models_cached_price(server: InProcessServer, applied: Cockpit, claude: FakeAnthropic) -> None:
    client = sdk(server, applied)
    claude.reply = "one two three"
    claude.cache_read = 3
    client.messages.create(model="claude-cached", max_tokens=10, messages=[{"role": "user", "content": "count to three please"}])
    with client.messages.stream(model="claude-cached", max_tokens=10, messages=[{"role": "user", "content": "count to three please"}]) as stream:
        stream.get_final_message()
    server.flush()
    rows = ledger_rows(applied.url)
    # 4 input tokens, 3 of them read from the cache at 0.3 instead of 3 per million.
    raw = ((1 * Decimal(3) + 3 * Decimal("0.3") + 3 * Decimal(15)) / Decimal(1_000_000)).quantize(LEDGER_PLACES)
    assert [Decimal(str(row.credits)) for row in rows] == [(raw * FACTOR).quantize(LEDGER_PLACES)] * 2
    assert [row.metadata["cached_prompt_tokens"] for row in rows] == [3, 3]


def test_responses_for_an_anthropic_model_are_translated_by_litellm(server: InProcessServer, applied: Cockpit, claude: FakeAnthropic) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    claude.reply = "one two three"
    body = {"model": "claude", "input": "count to three please", "max_output_tokens": 10}
    plain = httpx.post(f"{server.url}/v1/responses", headers={"Authorization": f"Bearer {bob}"}, json=body, timeout=30)
    assert plain.status_code == 200, plain.text
    assert plain.json()["usage"]["output_tokens"] == 3 and plain.json()["model"] == "claude"
    assert claude.requests[-1].path == "/v1/messages" and claude.requests[-1].body["max_tokens"] == 10
    with httpx.stream("POST", f"{server.url}/v1/responses", headers={"Authorization": f"Bearer {bob}"}, json={**body, "stream": True}, timeout=30) as streamed:
        streamed.read()
    events = [json.loads(line[len("data: "):]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "one two three"
    assert events[-1]["type"] == "response.completed"
    server.flush()
    rows = ledger_rows(applied.url)
    assert [(row.metadata["endpoint"], row.metadata["stream"]) for row in rows] == [("responses", False), ("responses", True)]
    assert [Decimal(str(row.credits)) for row in rows] == [credits_for("claude", 4, 3)] * 2
