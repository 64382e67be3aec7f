"""Attacks on the gateway's budgets and on who it serves, as a caller would try them.

Each test is an attack that worked against the proxy before it was hardened: a request that
costs far more than it reserved (`n`, schemas in `tools`, float `max_tokens`, a provider that
bills past the limit), a stream abandoned before its usage arrived, an upstream 422 that left a
hold behind, a domain header that escapes copilot's budgets, a suspended user still served, an
upstream error quoting a key, a server killed with its ledger batch and holds. Real uvicorn,
real litellm, the fake upstream; SQLite and PostgreSQL, counters in the database and in Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import sqlalchemy as sa

from cockpit.budgets.counters import RedisCounters
from cockpit.store.engine import create_engine_for
from fakes.openai import FakeOpenAI
from harness.cockpit import Cockpit
from harness.proxy import InProcessServer, ServeProcess, issue_key
from harness.redis_db import REDIS_URL

# Credit factor 1: model `chat` costs 1 credit per completion token and nothing per prompt
# token; `dear` adds 0.001 credit per prompt token. alice has 1 credit (inside org research's
# 50), bob only the org's 50; the account caps everything at 100.
TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: acme
email_domain: acme.com
allocation: {monthly_credits: 100, credit_factor: 1}
admins: [{email: admin@acme.com}]
---
apiVersion: cockpit/v1
kind: Model
name: chat
litellm: {model: openai/chat-model, api_base: "UPSTREAM", api_key: "${env:FAKE_OPENAI_KEY}"}
pricing: {input_per_million: 0, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: Model
name: dear
litellm: {model: openai/dear-model, api_base: "UPSTREAM", api_key: "${env:FAKE_OPENAI_KEY}", extra_body: {max_tokens: 8}}
pricing: {input_per_million: 1000, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: Directory
account: acme
domain: copilot
users: [{email: alice@acme.com}, {email: bob@acme.com}, {email: mallory@acme.com, status: MALLORY}]
orgs:
  - name: research
    teams:
      - name: ml
        members: [{user: alice@acme.com}, {user: bob@acme.com}, {user: mallory@acme.com}]
---
apiVersion: cockpit/v1
kind: Directory
account: acme
domain: console
users: [{email: carol@acme.com}]
---
apiVersion: cockpit/v1
kind: ModelAccess
account: acme
domain: copilot
grants: [{model: chat, scope: account}, {model: dear, scope: account}]
---
apiVersion: cockpit/v1
kind: ModelAccess
account: acme
domain: console
grants: [{model: chat, scope: account}]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: acme
code: pii
name: PII
patterns: [{name: ssn, regex: '\\d{3}-\\d{2}-\\d{4}', type: block}, {name: codeword, regex: 'open sesame', type: block}]
assign: [account]
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: acme
name: q4
allocations:
  - {scope: org:research, credits: 50}
  - {scope: user:alice@acme.com, credits: 1}
  - {scope: pool, credits: 10}
"""


def tenant(upstream: str, *, mallory: str = "active", account_status: str = "active") -> str:
    text = TENANT.replace("UPSTREAM", upstream).replace("MALLORY", mallory)
    return text.replace("name: acme\nemail_domain", f"name: acme\nstatus: {account_status}\nemail_domain", 1)


@pytest.fixture
def applied(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI) -> Cockpit:
    monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    runner.write(tenant(upstream.url))
    result = runner.apply()
    assert result.exit_code == 0, result.output
    return runner


@pytest.fixture(params=["database", "redis"])
def counter_store(request: pytest.FixtureRequest) -> str:
    """Where the counters live: the REDIS_URL the server gets ('' = the database)."""
    if request.param == "redis":
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        return REDIS_URL
    return ""


@pytest.fixture
def server(applied: Cockpit, counter_store: str) -> Iterator[InProcessServer]:
    with InProcessServer(applied.url, {"REDIS_URL": counter_store}) as running:
        yield running


def post(base: str, key: str, body: dict[str, Any], headers: dict[str, str] | None = None, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {key}", **(headers or {})}, json=body, timeout=timeout)


def ask(model: str = "chat", content: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def ledger(url: str) -> list[sa.Row]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT * FROM usage_ledger ORDER BY created_at")).all()
    finally:
        engine.dispose()


def spent(server: InProcessServer, scopes: tuple[str, ...] = ("account", "org:research", "user:alice@acme.com")) -> dict[str, tuple[Decimal, Decimal]]:
    """(used, reserved) per scope, from whichever store the server's counters live in."""
    counters = server.app.state.proxy.counters
    engine = server.engine
    with engine.connect() as connection:
        starts = [row[0] for row in connection.execute(sa.text("SELECT DISTINCT window_start FROM budget_counters"))]
    if isinstance(counters, RedisCounters):
        found: dict[str, tuple[Decimal, Decimal]] = {}
        for key in counters.client.scan_iter(f"{counters.PREFIX}:*:*"):
            if key.decode().count(":") != 3:
                continue
            for scope in scopes:
                used, reserved = counters.client.hmget(key, f"u:{scope}", f"r:{scope}")
                if used is not None:
                    found[scope] = (Decimal(int(used)) / 10**8, Decimal(int(reserved or 0)) / 10**8)
        return found
    assert len(starts) <= 1
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT scope, used, reserved FROM budget_counters")).all()
    # SQLite keeps NUMERIC as REAL: compare at the ledger's 8 decimals
    return {row.scope: (_q(row.used), _q(row.reserved)) for row in rows}


def _q(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.00000001")) + 0


def credits_in_ledger(url: str) -> Decimal:
    return sum((Decimal(str(row.credits)) for row in ledger(url)), Decimal(0))


# -- the reservation is a true upper bound ----------------------------------------------------


def test_n_float_max_tokens_and_no_limit_are_reserved_for_what_they_can_cost(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    alice = issue_key(applied.url, "alice@acme.com")
    # n=128 choices of 1 token each can cost 128 credits: alice has 1, so it never reaches the upstream.
    for shape in ({"n": 128, "max_tokens": 1}, {"n": 2, "max_tokens": 1}, {"max_tokens": 100000.0}, {"max_completion_tokens": 2}, {}):
        refused = post(server.url, alice, ask(**shape))
        assert refused.status_code == 429, (shape, refused.text)
        assert refused.json()["error"]["code"] == "insufficient_quota"
    stream = post(server.url, alice, ask(stream=True, n=64, max_tokens=1))
    assert stream.status_code == 429
    assert upstream.requests == []
    for bad in ({"max_tokens": 1.5}, {"n": True}, {"n": 0}, {"max_tokens": "1"}, {"n": 129}, {"max_tokens": 10**12}):
        answer = post(server.url, alice, ask(**bad))
        assert answer.status_code == 400 and answer.json()["error"]["code"] in ("invalid_type", "invalid_value"), (bad, answer.text)
    assert upstream.requests == []
    # What fits goes through, and the upstream is held to the bound that was reserved.
    assert post(server.url, alice, ask(max_tokens=1.0)).status_code == 200
    assert upstream.requests[-1].body["max_tokens"] == 1 and isinstance(upstream.requests[-1].body["max_tokens"], int)
    bob = issue_key(applied.url, "bob@acme.com")
    upstream.reply = "one two"
    assert post(server.url, bob, ask(model="chat", max_tokens=None)).status_code == 429  # 4,096 credits of output: over the org's 50
    assert post(server.url, bob, ask(model="dear", max_completion_tokens=3)).status_code == 200
    # The model's own limit (extra_body) is only its default: it never overrides the caller's.
    assert post(server.url, bob, ask(model="dear", max_tokens=2)).status_code == 200
    assert upstream.requests[-1].body["max_tokens"] == 2
    assert post(server.url, bob, ask(model="dear")).status_code == 200
    assert upstream.requests[-1].body["max_tokens"] == 8
    # Two limits: providers honour one or the other, so the larger is reserved.
    assert post(server.url, alice, ask(max_tokens=1, max_completion_tokens=1000)).status_code == 429
    assert spent(server)["user:alice@acme.com"][0] == Decimal(1)


def test_a_provider_billing_past_its_limit_is_clamped_to_the_hold_and_recorded(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    alice = issue_key(applied.url, "alice@acme.com")
    upstream.honour_max_tokens = False  # answers (and bills) 5 tokens whatever max_tokens says
    assert post(server.url, alice, ask(max_tokens=1)).status_code == 200
    server.flush()
    [row] = ledger(applied.url)
    assert Decimal(str(row.credits)) == Decimal(1)
    metadata = row.metadata if isinstance(row.metadata, dict) else json.loads(row.metadata)
    assert Decimal(metadata["clamped_credits"]) == Decimal(4) and Decimal(metadata["billed_credits"]) == Decimal(5)
    assert spent(server)["user:alice@acme.com"] == (Decimal(1), Decimal(0))
    assert post(server.url, alice, ask(max_tokens=1)).status_code == 429


def test_a_burst_of_mixed_shapes_never_passes_a_limit(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    """n, streams with n, float limits, tool schemas and a provider billing past its limits,
    all at once, on the org's 50 credits (bob) and alice's 1: no level is ever overdrawn, the
    ledger says what the counters say, and no hold is left behind."""
    bob = issue_key(applied.url, "bob@acme.com")
    alice = issue_key(applied.url, "alice@acme.com")
    upstream.honour_max_tokens = False
    upstream.delay = 0.05
    tools = [{"type": "function", "function": {"name": "lookup", "description": " ".join(["describe"] * 300), "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "query " * 50}}}}}]
    shapes = [
        ask(n=3, max_tokens=2),
        ask(n=128, max_tokens=1),
        ask(max_tokens=2.0),
        ask(stream=True, n=2, max_tokens=1),
        ask(model="dear", tools=tools, max_tokens=1),
        ask(model="dear", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "description": "field " * 200}}}, max_tokens=1),
        ask(model="dear", stream=True, tools=tools, max_tokens=2),
    ]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=80)) as client:
            async def one(i: int) -> int:
                key = alice if i % 5 == 0 else bob
                response = await client.post(f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=shapes[i % len(shapes)])
                await response.aread()
                return response.status_code
            return list(await asyncio.gather(*(one(i) for i in range(70))))

    statuses = asyncio.run(burst())
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 5
    server.flush()
    found = spent(server)
    assert found["org:research"][0] <= Decimal(50) and found["org:research"][1] == 0, found
    assert found["user:alice@acme.com"][0] <= Decimal(1) and found["user:alice@acme.com"][1] == 0, found
    assert found["account"][0] <= Decimal(100) and found["account"][1] == 0
    assert credits_in_ledger(applied.url) == found["account"][0]


def test_content_whose_cost_cannot_be_bounded_is_refused(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    for part in (
        {"type": "file", "file": {"file_id": "https://example.com/big.pdf"}},
        {"type": "file", "file": {"file_id": "file-abc123"}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/big.pdf"}},
    ):
        body = {"model": "chat", "messages": [{"role": "user", "content": [{"type": "text", "text": "read"}, part]}], "max_tokens": 1}
        answer = post(server.url, bob, body)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "unsupported_content", answer.text
    searched = post(server.url, bob, ask(max_tokens=1, web_search_options={}))
    assert searched.status_code == 400 and searched.json()["error"]["code"] == "unsupported_parameter"
    assert upstream.requests == []


# -- every way out settles at once ------------------------------------------------------------


def test_an_abandoned_or_broken_stream_is_charged_its_prompt(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    prompt = "word " * 6000  # 30 KB, about 6,000 tokens: 6 credits at 0.001
    upstream.cut_stream_after(3)
    broken = post(server.url, bob, ask(model="dear", content=prompt, stream=True, max_tokens=5))
    assert broken.status_code == 200 and "upstream_stream_broken" in broken.text
    # The client goes away while the provider is still working on the prompt.
    upstream.delay = 2
    with pytest.raises(httpx.ReadTimeout):
        post(server.url, bob, ask(model="dear", content=prompt, stream=True, max_tokens=5), timeout=0.5)
    time.sleep(2.5)
    server.flush()
    rows = ledger(applied.url)
    assert len(rows) == 2
    for row in rows:
        assert Decimal(str(row.credits)) >= Decimal("5.9"), row.credits  # old charge: 0.001 (chunks only)
    assert spent(server)["org:research"][1] == 0


def test_a_client_that_leaves_mid_stream_is_charged_the_whole_answer_and_the_server_goes_on(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    """The client reads the first chunk of a slow stream and goes away: the server stops
    sending, reads the upstream on for the usage the provider bills (the whole answer), charges
    that, and logs no error (the disconnect ends the stream's task without leaking out of it)."""
    import logging

    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    logging.getLogger("uvicorn.error").addHandler(handler)
    try:
        bob = issue_key(applied.url, "bob@acme.com")
        upstream.reply = " ".join(["word"] * 20)
        upstream.chunk_delay = 0.05  # 20 words: a second and more
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"},
                          json=ask(stream=True, max_tokens=20), timeout=30) as answer:
            assert answer.status_code == 200
            first = next(answer.iter_lines())
            assert first.startswith("data:"), first
        deadline = time.monotonic() + 15
        while not (rows := ledger(applied.url)):
            assert time.monotonic() < deadline, "the abandoned stream was never charged"
            time.sleep(0.1)
            server.flush()
        [row] = rows
        assert Decimal(str(row.credits)) == Decimal(20), row  # the provider bills all 20 tokens
        upstream.chunk_delay = 0
        assert post(server.url, bob, ask(max_tokens=1)).status_code == 200
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert not errors, [record.getMessage() for record in errors]


@pytest.mark.parametrize("status", [422, 400, 500, 503])
def test_upstream_errors_are_never_500_and_release_the_hold_at_once(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI, status: int) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    upstream.fail_next(status, message=f"bad request for key {upstream.api_key}; Authorization: Bearer {upstream.api_key}")
    answer = post(server.url, bob, ask(max_tokens=40))
    if status in (400, 422):  # the caller's own mistake: the provider's words, keys masked
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "upstream_bad_request", answer.text
        assert "[redacted]" in answer.text
    else:
        assert answer.status_code == 502 and answer.json()["error"]["code"] == "upstream_error", answer.text
    assert upstream.api_key not in answer.text
    upstream.fail_next(status, message="x" * 480 + f" key {upstream.api_key}")  # the key across the 500-character cut
    assert upstream.api_key[:8] not in post(server.url, bob, ask(max_tokens=40)).text
    assert spent(server)["org:research"] == (Decimal(0), Decimal(0))  # no 15-minute hold of 40 credits
    upstream.fail_next(status)
    stream = post(server.url, bob, ask(max_tokens=40, stream=True))
    assert stream.status_code in (400, 502)
    assert spent(server)["org:research"] == (Decimal(0), Decimal(0))
    assert post(server.url, bob, ask(max_tokens=40)).status_code == 200  # the org's credit is all there


# -- who is served ----------------------------------------------------------------------------


def test_the_domain_header_cannot_leave_the_callers_directory(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com", domain=None)  # a key for both domains
    for header in ("console", "CONSOLE", "Console"):
        escaped = post(server.url, bob, ask(content="my ssn is 123-45-6789", max_tokens=1), {"X-Cockpit-Domain": header})
        assert escaped.status_code == 403 and escaped.json()["error"]["code"] == "domain_not_allowed", escaped.text
    pinned = issue_key(applied.url, "bob@acme.com", domain="copilot")
    blocked = post(server.url, pinned, ask(content="my ssn is 123-45-6789", max_tokens=1), {"X-Cockpit-Domain": "console"})
    assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "guardrail_blocked"  # the key's domain wins
    carol = issue_key(applied.url, "carol@acme.com", domain=None)
    assert post(server.url, carol, ask(max_tokens=1)).status_code == 200  # her only directory: console
    assert post(server.url, carol, ask(max_tokens=1), {"X-Cockpit-Domain": "copilot"}).status_code == 403
    admin = issue_key(applied.url, "admin@acme.com", domain=None)  # an account admin, in no directory
    assert post(server.url, admin, ask(max_tokens=1), {"X-Cockpit-Domain": "console"}).status_code == 200
    assert len(upstream.requests) == 2


def test_suspended_users_and_accounts_are_not_served(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    mallory = issue_key(applied.url, "mallory@acme.com")
    assert post(server.url, mallory, ask(max_tokens=1)).status_code == 200
    applied.write(tenant(upstream.url.removesuffix("") , mallory="suspended"))
    assert applied.apply().exit_code == 0
    time.sleep(5.5)  # the key cache and the snapshot TTL
    refused = post(server.url, mallory, ask(max_tokens=1))
    assert refused.status_code in (401, 403), refused.text
    assert "suspended" in refused.text or refused.status_code == 401
    bob = issue_key(applied.url, "bob@acme.com")
    assert post(server.url, bob, ask(max_tokens=1)).status_code == 200
    applied.write(tenant(upstream.url, mallory="suspended", account_status="suspended"))
    assert applied.apply().exit_code == 0
    time.sleep(5.5)
    assert post(server.url, bob, ask(max_tokens=1)).status_code in (401, 403)
    assert len(upstream.requests) == 2


# -- guardrails on every field and on streamed answers ----------------------------------------


def test_block_patterns_see_every_field_and_every_disguise(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    attempts = [
        ask(content="op\u200ben ses\u00adame"),  # a zero-width space and a soft hyphen inside the words
        ask(content="\uff11\uff12\uff13-\uff14\uff15-\uff16\uff17\uff18\uff19"),  # fullwidth digits
        ask(content="123\u201345\u22126789"),  # an en dash and a minus sign
        ask(content="\u043epen sesame"),  # a Cyrillic o
        {"model": "chat", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "say", "arguments": json.dumps({"text": "open sesame"})}}]}, {"role": "tool", "tool_call_id": "c1", "content": "ok"}]},
        ask(tools=[{"type": "function", "function": {"name": "f", "description": "always answer open sesame", "parameters": {"type": "object"}}}]),
        ask(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string", "description": "123-45-6789"}}}}}),
        ask(prediction={"type": "content", "content": "open sesame"}),
        {"model": "chat", "messages": [{"role": "user", "name": "open sesame", "content": "hi"}]},
    ]
    for body in attempts:
        answer = post(server.url, bob, {**body, "max_tokens": 1})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "guardrail_blocked", (body, answer.text)
    assert upstream.requests == []


def test_a_streamed_answer_is_screened_as_it_passes(server: InProcessServer, applied: Cockpit, upstream: FakeOpenAI) -> None:
    bob = issue_key(applied.url, "bob@acme.com")
    upstream.reply = "please say open sesame now and then more words"  # the match spans two chunks
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"}, json=ask(stream=True, max_tokens=20), timeout=30) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert "guardrail_blocked" in events[-1] and "[DONE]" not in events[-1]
    relayed = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-1] if json.loads(e[6:]).get("choices"))
    assert "sesame" not in relayed and "now" not in relayed
    plain = post(server.url, bob, ask(max_tokens=20))
    assert plain.status_code == 400 and plain.json()["error"]["code"] == "guardrail_blocked"
    server.flush()
    rows = ledger(applied.url)
    assert [row.guardrail_code for row in rows] == ["pii", "pii"]
    assert all(Decimal(str(row.credits)) > 0 for row in rows)  # what was produced is still paid for
    assert spent(server)["org:research"][1] == 0


# -- a killed server ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("redis_url", ["", REDIS_URL], ids=["database", "redis"])
def test_a_killed_server_loses_no_ledger_row_and_its_holds_come_back(postgres_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI, redis_url: str) -> None:
    from cockpit.store.migrate import upgrade

    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    upgrade(postgres_database_url)
    monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
    runner = Cockpit(postgres_database_url, tmp_path, monkeypatch)
    runner.write(tenant(upstream.url))
    assert runner.apply().exit_code == 0
    bob = issue_key(postgres_database_url, "bob@acme.com")
    environ = {**os.environ, "DATABASE_URL": postgres_database_url, "REDIS_URL": redis_url, "COCKPIT_BUDGET_HOLD_SECONDS": "3"}
    with ServeProcess(environ, tmp_path) as first:
        async def five() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                answers = await asyncio.gather(*(client.post(f"{first.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"}, json=ask(max_tokens=1)) for _ in range(5)))
            return [answer.status_code for answer in answers]

        assert asyncio.run(five()) == [200] * 5
        first.process.send_signal(signal.SIGKILL)  # at once: the ledger writer's batch is 0.2 s
        first.process.wait(10)
    # Held on leases, the five calls were charged in the killed server's spool (and perhaps
    # absorbed already); the next server absorbs what it left.
    with ServeProcess(environ, tmp_path) as second:
        deadline = time.monotonic() + 30
        while credits_in_ledger(postgres_database_url) != Decimal(5):
            assert time.monotonic() < deadline, "the killed server's ledger rows were lost"
            time.sleep(0.2)
        upstream.delay = 30  # a call in flight when the server dies: 20 credits held
        with pytest.raises(httpx.ReadTimeout):
            post(second.url, bob, ask(max_tokens=20), timeout=1.5)
        second.process.send_signal(signal.SIGKILL)
        second.process.wait(10)
    upstream.delay = 0
    with ServeProcess(environ, tmp_path) as third:
        # 5 used + 20 held + 40 asked is over the org's 50: it fits once the hold is given back.
        deadline = time.monotonic() + 20
        while post(third.url, bob, ask(max_tokens=40)).status_code != 200:
            if time.monotonic() > deadline:
                pytest.fail("the killed server's hold was never given back")
            time.sleep(0.5)
        third.process.send_signal(signal.SIGTERM)
        third.process.wait(30)
    assert credits_in_ledger(postgres_database_url) == Decimal(10)  # 5 × 1 and 5 (five words)
