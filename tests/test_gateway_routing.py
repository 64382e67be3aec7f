"""Routing and rate limits through the gateway, end to end: `cockpit serve` (real uvicorn) in
front of three fake OpenAI upstreams, on SQLite and PostgreSQL.

- Rate limits: N + k concurrent calls against `rpm: N` admit exactly N in the minute, on one
  server (counters in the database) and across two `cockpit serve` processes sharing Redis;
  the 429s carry OpenAI's body and headers, the 200s the `x-ratelimit-*` headers.
- Routing: a dead or failing deployment fails no call while another is healthy; a failing
  model falls back to its fallback (never to one the caller may not use) and is charged at the
  served model's prices; a deployment's 401 is reported as a configuration error. Weights are
  checked on the `Router` itself over 1,000 choices (1,000 real calls would cost CI ~10 s for
  nothing the router does not decide alone).

One server per database for the module: tests that need a fresh minute counter use a user of
their own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from cockpit.proxy.routing import Route, Router, route_of
from cockpit.store.engine import normalise_database_url
from cockpit.store.migrate import upgrade
from conftest import TEST_SERVER_VARIABLE, in_ci
from fakes.openai import serve_openai
from harness.cockpit import Cockpit
from harness.proxy import InProcessServer, ServeProcess, chat, issue_key, ledger_rows
from harness.redis_db import REDIS_URL

RPM = 5
EXTRA = 3
WRONG_KEY = "sk-wrong-deployment-key-0000"

TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: acme
email_domain: acme.com
allocation: {monthly_credits: 1000, credit_factor: 1}
admins: [{email: admin@acme.com}]
---
apiVersion: cockpit/v1
kind: Model
name: pair
deployments:
  - {name: a, litellm: {model: openai/pair-a, api_base: "A", api_key: "${env:FAKE_OPENAI_KEY}"}}
  - {name: b, litellm: {model: openai/pair-b, api_base: "B", api_key: "${env:FAKE_OPENAI_KEY}"}}
pricing: {input_per_million: 0, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: Model
name: primary
litellm: {model: openai/primary, api_base: "C", api_key: "${env:FAKE_OPENAI_KEY}"}
fallbacks: [secret, backup]
timeout_seconds: 0.5
pricing: {input_per_million: 0, output_per_million: 2000000}
---
apiVersion: cockpit/v1
kind: Model
name: secret
litellm: {model: openai/secret, api_base: "B", api_key: "${env:FAKE_OPENAI_KEY}"}
pricing: {input_per_million: 0, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: Model
name: backup
litellm: {model: openai/backup, api_base: "A", api_key: "${env:FAKE_OPENAI_KEY}"}
pricing: {input_per_million: 0, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: Model
name: keyed
deployments:
  - {name: wrong, litellm: {model: openai/keyed, api_base: "A", api_key: "${env:WRONG_OPENAI_KEY}"}, weight: 1000}
  - {name: right, litellm: {model: openai/keyed, api_base: "A", api_key: "${env:FAKE_OPENAI_KEY}"}}
pricing: {input_per_million: 0, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: Model
name: limited
litellm: {model: openai/limited, api_base: "A", api_key: "${env:FAKE_OPENAI_KEY}"}
pricing: {input_per_million: 0, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: Model
name: tiny
deployments:
  - {name: only, litellm: {model: openai/tiny, api_base: "A", api_key: "${env:FAKE_OPENAI_KEY}"}, rpm: 1}
pricing: {input_per_million: 0, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: Directory
account: acme
domain: copilot
users: [{email: bob@acme.com}, {email: carol@acme.com}, {email: erin@acme.com}, {email: frank@acme.com}]
orgs: [{name: research, teams: [{name: ml, members: [{user: bob@acme.com}, {user: carol@acme.com}, {user: erin@acme.com}, {user: frank@acme.com}]}]}]
---
apiVersion: cockpit/v1
kind: ModelAccess
account: acme
domain: copilot
grants:
  - {model: pair, scope: org:research}
  - {model: primary, scope: org:research}
  - {model: backup, scope: org:research}
  - {model: keyed, scope: org:research}
  - {model: limited, scope: org:research}
  - {model: tiny, scope: org:research}
  - {model: secret, scope: user:carol@acme.com}
---
apiVersion: cockpit/v1
kind: RateLimits
account: acme
domain: copilot
limits:
  - {scope: team:research/ml, per_user: true, model: limited, rpm: RPM}
"""


def _database(kind: str, root: Path) -> Iterator[str]:
    """A migrated database for the module: a SQLite file, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite:///{root / 'cockpit.db'}"
        upgrade(url)
        yield url
        return
    server = os.environ.get(TEST_SERVER_VARIABLE, "").strip().replace("postgresql+psycopg://", "postgresql://", 1)
    if not server:
        (pytest.fail if in_ci() else pytest.skip)(f"{TEST_SERVER_VARIABLE} is not set: no PostgreSQL server to test against")
    name = f"cockpit_test_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(normalise_database_url(server)).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module", params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)])
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The tenant applied, three upstreams (A, B, C) and one server (counters in the database)."""
    root = tmp_path_factory.mktemp(request.param)
    fakes = [serve_openai() for _ in range(3)]
    patch = pytest.MonkeyPatch()
    try:
        for url in _database(request.param, root):
            patch.setenv("FAKE_OPENAI_KEY", fakes[0].api_key)
            patch.setenv("WRONG_OPENAI_KEY", WRONG_KEY)
            runner = Cockpit(url, root, patch)
            text = TENANT.replace("RPM", str(RPM))
            for letter, fake in zip("ABC", fakes):
                text = text.replace(f'"{letter}"', f'"{fake.url}"')
            runner.write(text)
            result = runner.apply()
            assert result.exit_code == 0, result.output
            # Keys are made before the server runs: on SQLite a key's read-then-write transaction
            # can lose the race with the server's writes (SQLITE_BUSY at once, in WAL mode).
            keys = {user: issue_key(url, f"{user}@acme.com") for user in ("bob", "carol", "erin", "frank")}
            with InProcessServer(url, {"REDIS_URL": ""}) as server:
                yield SimpleNamespace(url=url, root=root, server=server, keys=keys, a=fakes[0], b=fakes[1], c=fakes[2])
    finally:
        patch.undo()
        for fake in fakes:
            fake.stop()


@pytest.fixture(autouse=True)
def _healthy_upstreams(gateway: SimpleNamespace) -> Iterator[None]:
    yield
    for fake in (gateway.a, gateway.b, gateway.c):
        fake.reset()


def cooled_down(gateway: SimpleNamespace, model: str) -> None:
    """Wait until no deployment of `model` is cooling down from an earlier test's failures."""
    proxy = gateway.server.app.state.proxy
    while any(proxy.router.cooldown(d) > 0 for d in proxy.catalog.current.routes[model].deployments):
        time.sleep(0.1)


def inside_one_minute(seconds: float = 8.0) -> None:
    """Wait for the next minute when fewer than `seconds` are left of this one, so a burst is
    counted in one fixed window."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.05)


async def burst(bases: list[str], key: str, model: str, count: int) -> list[httpx.Response]:
    """`count` calls at once, spread over `bases`."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as client:
        async def one(i: int) -> httpx.Response:
            return await client.post(
                f"{bases[i % len(bases)]}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                json={"model": model, "messages": [{"role": "user", "content": f"request {i}"}], "max_tokens": 2},
            )

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def assert_exactly_rpm_admitted(responses: list[httpx.Response]) -> None:
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * RPM + [429] * EXTRA, statuses
    for response in responses:
        assert response.headers["x-ratelimit-limit-requests"] == str(RPM)
        if response.status_code == 429:
            error = response.json()["error"]
            assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
            assert "team:research/ml (limited, per user)" in error["message"] and f"{RPM} requests per minute" in error["message"]
            assert 1 <= int(response.headers["retry-after"]) <= 60
            assert response.headers["x-ratelimit-remaining-requests"] == "0"
            assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in responses if r.status_code == 200)
    assert remaining == list(range(RPM)), remaining  # each admission saw its own count


def test_concurrent_calls_over_rpm_admit_exactly_rpm_on_one_server(gateway: SimpleNamespace) -> None:
    bob = gateway.keys["bob"]
    inside_one_minute()
    responses = asyncio.run(burst([gateway.server.url], bob, "limited", RPM + EXTRA))
    assert_exactly_rpm_admitted(responses)
    assert len([r for r in gateway.a.requests if r.body["model"] == "limited"]) == RPM  # refused before the upstream
    # the limit is per user and per model: another user, another model are not refused
    carol = gateway.keys["carol"]
    assert chat(gateway.server.url, carol, "limited", max_tokens=2).status_code == 200
    other = chat(gateway.server.url, bob, "backup", max_tokens=2)
    assert other.status_code == 200 and "x-ratelimit-limit-requests" not in other.headers


def test_concurrent_calls_over_rpm_admit_exactly_rpm_across_two_processes_on_redis(gateway: SimpleNamespace) -> None:
    erin = gateway.keys["erin"]
    environ = {**os.environ, "DATABASE_URL": gateway.url, "REDIS_URL": REDIS_URL, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    with ServeProcess(environ, gateway.root) as one, ServeProcess(environ, gateway.root) as two:
        inside_one_minute()
        responses = asyncio.run(burst([one.url, two.url], erin, "limited", RPM + EXTRA))
    assert_exactly_rpm_admitted(responses)


def test_streams_and_errors_after_admission_carry_the_rate_headers_and_streams_fall_back_before_their_first_byte(gateway: SimpleNamespace) -> None:
    carol = gateway.keys["carol"]
    with httpx.stream("POST", f"{gateway.server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {carol}"},
                      json={"model": "limited", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True}, timeout=30) as streamed:
        streamed.read()
    assert streamed.status_code == 200 and streamed.headers["x-ratelimit-limit-requests"] == str(RPM)
    gateway.a.fail_next(500)  # limited has one deployment: the call fails after its admission
    failed = chat(gateway.server.url, carol, "limited", max_tokens=2)
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "upstream_error"
    assert failed.headers["x-ratelimit-limit-requests"] == str(RPM)
    cooled_down(gateway, "primary")
    gateway.c.fail_next(503)
    with httpx.stream("POST", f"{gateway.server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {carol}"},
                      json={"model": "primary", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True}, timeout=30) as fallen_back:
        text = fallen_back.read().decode()
    assert fallen_back.status_code == 200 and '"model":"secret"' in text and text.endswith("data: [DONE]\n\n")


def test_a_dead_or_failing_deployment_fails_no_call(gateway: SimpleNamespace) -> None:
    frank = gateway.keys["frank"]
    router = gateway.server.app.state.proxy.router
    b = next(d for d in gateway.server.app.state.proxy.catalog.current.routes["pair"].deployments if d.name == "b")

    def until_b_fails() -> list[int]:
        """Calls until the router has tried `b` (chosen first half the time) and cooled it."""
        while router.cooldown(b) > 0:  # a cooldown of an earlier failure: wait it out
            time.sleep(0.1)
        statuses = []
        while router.cooldown(b) == 0 and len(statuses) < 30:
            statuses.append(chat(gateway.server.url, frank, "pair", max_tokens=2).status_code)
        assert router.cooldown(b) > 0, "deployment b was never tried"
        return statuses

    gateway.b.fail_next(500, count=100)
    answering_500 = until_b_fails()
    gateway.b.reset()
    gateway.b.stop()  # refuses connections
    try:
        refusing = until_b_fails()
    finally:
        gateway.b.start()
    assert set(answering_500) == set(refusing) == {200}
    gateway.server.flush()
    rows = [r for r in ledger_rows(gateway.url) if r.user_email == "frank@acme.com"]
    assert len(rows) == len(answering_500) + len(refusing) and all(r.model_name == "pair" and r.metadata["deployment"] == "a" for r in rows)
    retried = [r.metadata["attempts"] for r in rows if len(r.metadata["attempts"]) > 1]
    assert [a[0] for a in retried] == [{"model": "pair", "deployment": "b", "outcome": outcome} for outcome in ("server_error", "unreachable")]
    assert all(a[1:] == [{"model": "pair", "deployment": "a", "outcome": "ok"}] for a in retried)


def test_a_failing_model_falls_back_to_one_the_caller_may_use_at_its_prices(gateway: SimpleNamespace) -> None:
    bob = gateway.keys["bob"]
    cooled_down(gateway, "primary")
    gateway.c.fail_next(503, count=100)
    response = chat(gateway.server.url, bob, "primary", max_tokens=2)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "backup"
    assert not [r for r in gateway.b.requests if r.body["model"] == "secret"]  # bob may not use `secret`
    gateway.server.flush()
    [row] = [r for r in ledger_rows(gateway.url) if r.request_id == response.headers["x-request-id"]]
    assert row.model_name == "backup" and row.metadata["requested_model"] == "primary"
    assert row.metadata["attempts"] == [
        {"model": "primary", "deployment": "default", "outcome": "server_error"},
        {"model": "backup", "deployment": "default", "outcome": "ok"},
    ]
    assert Decimal(str(row.credits)) == Decimal(2)  # 2 tokens at backup's price, not primary's


def test_an_attempt_that_times_out_falls_back_and_its_prompt_is_charged(gateway: SimpleNamespace) -> None:
    carol = gateway.keys["carol"]
    cooled_down(gateway, "primary")
    gateway.c.delay = 1.0  # over primary's timeout_seconds
    response = chat(gateway.server.url, carol, "primary", max_tokens=2)
    assert response.status_code == 200 and response.json()["model"] == "secret"  # carol may use it
    gateway.server.flush()
    [row] = [r for r in ledger_rows(gateway.url) if r.request_id == response.headers["x-request-id"]]
    assert [a["outcome"] for a in row.metadata["attempts"]] == ["timeout", "ok"]
    assert row.metadata["timed_out_prompt_tokens"] > 0  # the provider had it and may bill it


def test_a_deployment_refusing_its_key_is_a_configuration_error_not_a_failed_call(gateway: SimpleNamespace) -> None:
    bob = gateway.keys["bob"]
    router = gateway.server.app.state.proxy.router
    for _ in range(5):  # `wrong` comes first 1,000 times in 1,001
        assert chat(gateway.server.url, bob, "keyed", max_tokens=2).status_code == 200
        if router.config_errors:
            break
    error = router.config_errors[-1]
    assert (error.model, error.deployment, error.status) == ("keyed", "wrong", 401)
    wrong = next(d for d in gateway.server.app.state.proxy.catalog.current.routes["keyed"].deployments if d.name == "wrong")
    assert router.cooldown(wrong) == 0  # nobody is cooled down for a configuration error
    gateway.server.flush()
    rows = [r for r in ledger_rows(gateway.url) if r.model_name == "keyed" and len(r.metadata["attempts"]) > 1]
    assert rows and rows[-1].metadata["attempts"][0] == {"model": "keyed", "deployment": "wrong", "outcome": "misconfigured"}


def test_a_model_whose_deployments_used_their_rpm_is_refused_until_the_minute_ends(gateway: SimpleNamespace) -> None:
    inside_one_minute(3)
    first = chat(gateway.server.url, gateway.keys["bob"], "tiny", max_tokens=2)
    second = chat(gateway.server.url, gateway.keys["bob"], "tiny", max_tokens=2)
    assert first.status_code == 200 and second.status_code == 429, second.text
    assert second.json()["error"]["code"] == "deployments_busy" and 1 <= int(second.headers["retry-after"]) <= 60
    assert len([r for r in gateway.a.requests if r.body["model"] == "tiny"]) == 1


def test_weights_are_honoured_over_1000_choices() -> None:
    """The router alone (the gateway asks it for every call's plan): weight 3 against 1."""
    routes: dict[str, Route] = {"m": route_of("m", None, [{"name": "eu", "litellm": {}, "weight": 3}, {"name": "us", "litellm": {}, "weight": 1}])}
    router = Router()
    firsts = Counter(router.attempts("m", routes, lambda _: True)[0].deployment.name for _ in range(1000))
    assert 700 <= firsts["eu"] <= 800, firsts  # 750 expected; the bounds are > 3.5 sigma
