"""The LLM proxy end to end: cockpit serve (real uvicorn) → litellm → the fake upstream, on
SQLite and PostgreSQL, with budget counters in the database or in Redis."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import sqlalchemy as sa

from cockpit.store.engine import create_engine_for
from fakes.openai import FakeOpenAI
from harness.cockpit import Cockpit
from harness.proxy import InProcessServer, ServeProcess, chat, chat_many, counters, issue_key, tenant
from harness.redis_db import REDIS_URL


@pytest.fixture
def applied(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI) -> Cockpit:
    monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    runner.write(tenant(upstream.url))
    result = runner.apply()
    assert result.exit_code == 0, result.output
    return runner


@pytest.fixture
def server(applied: Cockpit) -> Iterator[InProcessServer]:
    with InProcessServer(applied.url, {"REDIS_URL": ""}) as running:
        yield running


def ledger(url: str) -> list[sa.Row]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT * FROM usage_ledger ORDER BY created_at")).all()
    finally:
        engine.dispose()



def test_allowed_model_answers_in_openai_shape_and_is_charged_exactly(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    key = issue_key(applied.url, "bob@acme.com")
    response = chat(server.url, key, "priced", "count these five words please")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "priced"
    assert body["choices"][0]["message"]["content"] == upstream.reply
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (5, len(upstream.reply.split()))
    assert upstream.requests[-1].authorization == f"Bearer {upstream.api_key}"
    server.flush()
    [row] = ledger(applied.url)
    raw = (Decimal(5) * Decimal("2.5") + Decimal(usage["completion_tokens"]) * Decimal(10)) / Decimal(1_000_000)
    assert Decimal(str(row.raw_cost)) == raw
    assert Decimal(str(row.credits)).quantize(Decimal("0.00000001")) == (raw * Decimal("1.25")).quantize(Decimal("0.00000001"))
    assert (row.domain, row.org_key, row.team_key, row.user_email, row.model_name) == ("copilot", "research", "research/ml", "bob@acme.com", "priced")


def test_denied_unknown_and_unauthenticated(server: InProcessServer, applied: Cockpit) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    denied = chat(server.url, bob, "locked")
    assert denied.status_code == 403
    assert "`locked`" in denied.json()["error"]["message"] and denied.json()["error"]["code"] == "model_not_allowed"
    unknown = chat(server.url, bob, "nope")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    anonymous = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "x"}]})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"
    invalid = httpx.post(f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}", "Content-Type": "application/json"}, content=b"{not json")
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_json"
    hijack = chat(server.url, bob, api_base="http://127.0.0.1:9/v1", api_key="mine")
    assert hijack.status_code == 400 and "api_base" in hijack.json()["error"]["message"]
    models = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {bob}"}).json()
    assert [m["id"] for m in models["data"]] == ["chat", "priced"]
    carol = issue_key(applied.url, "carol@acme.com", domain="console")
    assert [m["id"] for m in httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {carol}"}).json()["data"]] == ["chat"]
    assert chat(server.url, carol, "priced").status_code == 403
    assert chat(server.url, carol, "chat", max_tokens=2).status_code == 200


def test_budget_runs_out_exactly_at_its_boundary(server: InProcessServer, applied: Cockpit) -> None:
    alice = issue_key(applied.url, "alice@acme.com")
    # Each request costs 2 tokens × 1 × 1.25 = 2.5 credits; alice has 5.
    assert chat(server.url, alice, max_tokens=2).status_code == 200
    assert chat(server.url, alice, max_tokens=2).status_code == 200
    refused = chat(server.url, alice, max_tokens=1)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "insufficient_quota" and "user:alice@acme.com" in error["message"] and "no credit left" in error["message"]
    found = counters(applied.url)
    assert found["user:alice@acme.com"] == (Decimal("5.00"), Decimal("0.00"))
    assert found["team:research/ml"] == (Decimal("5.00"), Decimal("0.00"))
    server.flush()
    assert sum(Decimal(str(r.credits)) for r in ledger(applied.url)) == Decimal("5")


def test_parallel_requests_never_overspend(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    upstream.delay = 0.05  # keep requests in flight together
    statuses = asyncio.run(chat_many([server.url], bob, 50, max_tokens=2))
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 40
    server.flush()
    rows = ledger(applied.url)
    assert len(rows) == 10 and sum(Decimal(str(r.credits)) for r in rows) == Decimal("25")
    assert counters(applied.url)["team:research/ml"] == (Decimal("25.00"), Decimal("0.00"))


def test_guardrails_block_detect_and_allow(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    blocked = chat(server.url, bob, content="my ssn is 123-45-6789")
    assert blocked.status_code == 400
    message = blocked.json()["error"]["message"]
    assert "`pii`" in message and "`ssn`" in message and "123-45-6789" not in blocked.text
    assert len(upstream.requests) == 0
    assert chat(server.url, bob, content="000-00-0000", max_tokens=1).status_code == 200  # allow exempts
    detected = chat(server.url, bob, content="my key sk-abcdef12 leaked", max_tokens=1)
    assert detected.status_code == 200
    upstream.reply = "the number is 987-65-4321"
    answer_blocked = chat(server.url, bob, content="tell me", max_tokens=5)
    assert answer_blocked.status_code == 400 and "987-65-4321" not in answer_blocked.text
    assert "answer" in answer_blocked.json()["error"]["message"]
    server.flush()
    rows = ledger(applied.url)
    assert [r.guardrail_code for r in rows] == [None, "leaks", "pii"]
    meta = rows[1].metadata if isinstance(rows[1].metadata, dict) else json.loads(rows[1].metadata)
    assert meta["guardrails"] == [{"preset": "leaks", "pattern": "api-key", "action": "detect", "where": "request"}]
    assert Decimal(str(rows[2].credits)) > 0  # the blocked answer was still paid upstream


def _events(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.text.split("\n\n") if line.startswith("data: ")]


def test_stream_arrives_intact_in_order_with_usage(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    upstream.reply = "one two three four five six seven eight"
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"},
                      json={"model": "priced", "stream": True, "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": "count"}]}) as response:
        response.read()
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = _events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == upstream.reply
    assert all(c["model"] == "priced" for c in chunks)
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and (usage["prompt_tokens"], usage["completion_tokens"]) == (1, 8) and "cost" not in usage
    # Without include_usage the usage chunk is not passed on, but the charge is the same.
    plain = httpx.post(f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"},
                       json={"model": "priced", "stream": True, "messages": [{"role": "user", "content": "count"}]})
    assert all("usage" not in json.loads(e) for e in _events(plain)[:-1])
    server.flush()
    rows = ledger(applied.url)
    expected = ((Decimal("2.5") + 8 * Decimal(10)) / Decimal(1_000_000) * Decimal("1.25")).quantize(Decimal("0.00000001"))
    assert [Decimal(str(r.credits)).quantize(Decimal("0.00000001")) for r in rows] == [expected, expected]


def test_upstream_failures_are_openai_errors_and_release_the_hold(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    upstream.fail_next(429)
    limited = chat(server.url, bob, max_tokens=2)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "upstream_rate_limited"
    upstream.fail_next(500)
    failed = chat(server.url, bob, max_tokens=2)
    assert failed.status_code == 502 and upstream.api_key not in failed.text
    assert counters(applied.url)["team:research/ml"] == (Decimal("0.00"), Decimal("0.00"))
    upstream.stop()
    down = chat(server.url, bob, max_tokens=2)
    assert down.status_code == 502 and down.json()["error"]["code"] == "upstream_unreachable", down.text
    upstream.start()
    upstream.cut_stream_after(3)
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"},
                      json={"model": "chat", "stream": True, "max_tokens": 5, "messages": [{"role": "user", "content": "go"}]}) as response:
        response.read()
    events = _events(response)
    assert events and "[DONE]" not in events and "error" in json.loads(events[-1]), (response.status_code, response.text)
    assert chat(server.url, bob, max_tokens=2).status_code == 200
    server.flush()
    partial = [r for r in ledger(applied.url) if (r.metadata if isinstance(r.metadata, dict) else json.loads(r.metadata)).get("partial")]
    assert len(partial) == 1
    assert counters(applied.url)["team:research/ml"][1] == Decimal("0.00")


def test_catalog_change_reaches_the_running_server(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    assert chat(server.url, bob, "fresh").status_code == 404
    text = tenant(upstream.url).replace(
        "kind: Directory",
        f'kind: Model\nname: fresh\nlitellm: {{model: openai/fresh-model, api_base: "{upstream.url}", api_key: "${{env:FAKE_OPENAI_KEY}}"}}\npricing: {{input_per_million: 0, output_per_million: 1}}\n---\napiVersion: cockpit/v1\nkind: Directory',
        1,
    ).replace("  - {model: chat, scope: user:dave@acme.com}", "  - {model: chat, scope: user:dave@acme.com}\n  - {model: fresh, scope: org:research}")
    applied.write(text)
    assert applied.apply().exit_code == 0
    deadline = time.monotonic() + 10
    while chat(server.url, bob, "fresh", max_tokens=1).status_code != 200:
        assert time.monotonic() < deadline, "the new model did not reach the server"
        time.sleep(0.3)
    assert upstream.requests[-1].body["model"] == "fresh-model"


@pytest.mark.postgres
def test_two_server_processes_share_one_budget_through_redis(postgres_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI) -> None:
    from cockpit.store.migrate import upgrade

    upgrade(postgres_database_url)
    monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
    runner = Cockpit(postgres_database_url, tmp_path, monkeypatch)
    runner.write(tenant(upstream.url))
    assert runner.apply().exit_code == 0
    bob = issue_key(postgres_database_url, "bob@acme.com")
    environ = {**os.environ, "DATABASE_URL": postgres_database_url, "REDIS_URL": REDIS_URL}
    upstream.delay = 0.05
    with ServeProcess(environ, tmp_path) as one, ServeProcess(environ, tmp_path) as two:
        statuses = asyncio.run(chat_many([one.url, two.url], bob, 40, max_tokens=2))
    assert statuses.count(200) == 10, statuses
    rows = ledger(postgres_database_url)  # the servers flushed their ledgers when they stopped
    assert len(rows) == 10 and sum(Decimal(str(r.credits)) for r in rows) == Decimal("25")
    assert counters(postgres_database_url) == {}  # the counters lived in Redis


def test_budget_counters_in_redis_match_the_database_semantics(applied: Cockpit) -> None:
    with InProcessServer(applied.url, {"REDIS_URL": REDIS_URL}) as running:
        alice = issue_key(applied.url, "alice@acme.com")
        assert [chat(running.url, alice, max_tokens=2).status_code for _ in range(3)] == [200, 200, 429]
        running.flush()
    assert sum(Decimal(str(r.credits)) for r in ledger(applied.url)) == Decimal("5")
    assert counters(applied.url) == {}  # the counters lived in Redis


def test_the_upstream_key_never_shows(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    """The model's api_key, refused by the upstream or not, appears in no response, log line,
    ledger row or other table."""
    from test_secret_scan import assert_no_canary, dump_database

    canary = f"sk-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("FAKE_OPENAI_KEY", canary)  # the upstream expects another key: 401
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    runner.write(tenant(upstream.url))
    assert runner.apply().exit_code == 0
    caplog.set_level("DEBUG")
    with InProcessServer(migrated_url, {"REDIS_URL": ""}) as running:
        bob = issue_key(migrated_url, "bob@acme.com")
        refused = chat(running.url, bob, max_tokens=2)
        streamed = httpx.post(f"{running.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"},
                              json={"model": "chat", "stream": True, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
        models = httpx.get(f"{running.url}/v1/models", headers={"Authorization": f"Bearer {bob}"})
        upstream.api_key = canary  # now accepted: the answer must not carry it either
        answered = chat(running.url, bob, max_tokens=2)
        running.flush()
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "upstream_auth_failed"
    assert answered.status_code == 200, answered.text
    canaries = {"model api_key": canary}
    for where, response in (("refused", refused), ("streamed", streamed), ("models", models), ("answered", answered)):
        assert_no_canary(response.text + str(dict(response.headers)), where, canaries)
    assert_no_canary(caplog.text, "logs", canaries)
    assert_no_canary(json.dumps(dump_database(migrated_url), default=str), "database", canaries)
