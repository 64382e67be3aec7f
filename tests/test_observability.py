"""Seeing inside a running server: readiness, /metrics, traces.

- `/health/readiness` answers 503 naming each condition not met (database, schema at head,
  model catalog, Redis when configured) and flips to 200 once they are, on SQLite and
  PostgreSQL, in process;
- `/metrics` after real proxy calls (uvicorn, the fake OpenAI upstream): requests counted by
  route and status, budget used and limit per scope equal to the ledger and the plan, no e-mail
  address or key anywhere in it, and nobody but the master key and `COCKPIT_METRICS_TOKEN`
  reads it; the recording functions the proxy calls land in the families they name;
- spans reach a fake OTLP/HTTP collector on loopback, with GenAI attribute names, and `span`
  costs nothing when tracing is off.

The deployment files' commands (`cockpit db upgrade`, `cockpit serve --workers 2 --log-format
json`, the probes) run in `tests/test_deploy.py`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cockpit.observe import metrics as recorded
from cockpit.observe.tracing import GEN_AI_OPERATION_NAME, GEN_AI_REQUEST_MODEL, GEN_AI_USAGE_OUTPUT_TOKENS, NO_SPAN, configure_tracing, flush_tracing, shutdown_tracing, span
from cockpit.server.app import create_app
from cockpit.store.engine import create_engine_for
from cockpit.store.migrate import upgrade
from cockpit.store.tables import accounts, usage_ledger
from fakes.openai import FakeOpenAI
from fakes.otlp import FakeCollector
from harness.cockpit import Cockpit
from harness.proxy import InProcessServer, chat, free_port, issue_key, ledger_rows, tenant
from harness.redis_db import REDIS_URL

MASTER_KEY = "observability-master-key"
METRICS_TOKEN = "observability-metrics-token"
SECRET_KEY = "observability-secret-key-0123456789abcdef"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(base: str) -> str:
    response = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


# -- readiness ---------------------------------------------------------------------------------


def test_readiness_flips_from_503_to_200_as_its_conditions_are_met(database_url: str) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    environ = {"COCKPIT_SECRET_KEY": SECRET_KEY, "REDIS_URL": dead_redis}
    engine = create_engine_for(database_url)
    try:
        with TestClient(create_app(engine, environ)) as client:
            assert client.get("/health/liveliness").json() == {"status": "alive"}
            empty = client.get("/health/readiness")
            assert empty.status_code == 503
            body = empty.json()
            assert body["status"] == "not ready"
            assert body["not_ready"] == ["schema", "catalog", "redis"], body
            assert "run `cockpit db upgrade`" in body["checks"]["schema"]
            assert body["checks"]["database"] == "ok"
            assert dead_redis not in empty.text

            upgrade(database_url)
            migrated = client.get("/health/readiness")
            assert migrated.status_code == 503
            assert migrated.json()["not_ready"] == ["redis"], migrated.json()  # the catalog loads once the schema is there
            assert client.get("/health").json() == {"status": "healthy"}  # stays as it was

        environ["REDIS_URL"] = REDIS_URL
        with TestClient(create_app(engine, environ)) as client:
            ready = client.get("/health/readiness")
            assert ready.status_code == 200, ready.json()
            assert ready.json() == {"status": "ready", "not_ready": [], "checks": {"database": "ok", "schema": "ok", "catalog": "ok", "redis": "ok"}}
    finally:
        engine.dispose()


def test_readiness_names_an_unreachable_database_without_its_password() -> None:
    url = f"postgresql+psycopg://cockpit:hunter2-secret@127.0.0.1:{free_port()}/cockpit"
    engine = create_engine_for(url)
    try:
        with TestClient(create_app(engine, {"COCKPIT_SECRET_KEY": SECRET_KEY})) as client:
            answer = client.get("/health/readiness")
            assert answer.status_code == 503
            assert answer.json()["not_ready"] == ["database", "schema", "catalog"]
            assert answer.json()["checks"]["database"].startswith("Database not connected:")
            assert "hunter2" not in answer.text
            assert client.get("/health/liveliness").status_code == 200
    finally:
        engine.dispose()


# -- metrics -----------------------------------------------------------------------------------


@pytest.fixture
def served(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI) -> Iterator[tuple[InProcessServer, str]]:
    monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    runner.write(tenant(upstream.url))
    result = runner.apply()
    assert result.exit_code == 0, result.output
    environ = {"REDIS_URL": "", "COCKPIT_MASTER_KEY": MASTER_KEY, "COCKPIT_METRICS_TOKEN": METRICS_TOKEN}
    with InProcessServer(migrated_url, environ) as server:
        yield server, migrated_url


def test_metrics_after_proxy_calls_count_requests_and_budgets_match_the_ledger(served: tuple[InProcessServer, str]) -> None:
    server, url = served
    alice = issue_key(url, "alice@acme.com")
    bob = issue_key(url, "bob@acme.com")
    dave = issue_key(url, "dave@acme.com")
    before = samples(scrape(server.url))

    for _ in range(3):
        assert chat(server.url, bob, max_tokens=2).status_code == 200
    assert chat(server.url, alice, max_tokens=2).status_code == 200
    assert chat(server.url, dave, max_tokens=2).status_code == 200
    assert chat(server.url, alice, model="locked", max_tokens=2).status_code == 403
    server.flush()
    text = scrape(server.url)
    after = samples(text)

    route = {"route": "/v1/chat/completions", "method": "POST"}
    assert value(after, "cockpit_http_requests_total", status="200", **route) - value(before, "cockpit_http_requests_total", status="200", **route) == 5
    assert value(after, "cockpit_http_requests_total", status="403", **route) - value(before, "cockpit_http_requests_total", status="403", **route) == 1
    assert value(after, "cockpit_http_request_duration_seconds_count", route="/v1/chat/completions") - value(before, "cockpit_http_request_duration_seconds_count", route="/v1/chat/completions") == 6

    rows = ledger_rows(url)
    assert len(rows) == 5
    team = sum(Decimal(str(row.credits)) for row in rows if row.team_key == "research/ml")
    everything = sum(Decimal(str(row.credits)) for row in rows)
    pool = sum(Decimal(str(row.credits)) for row in rows if row.user_email == "dave@acme.com")
    assert team == Decimal("10") and pool == Decimal("2.5")  # 2 tokens × 1 credit × 1.25 per call
    budget = {"account": "acme", "plan": "q4"}
    assert value(after, "cockpit_budget_used_credits", scope="team:research/ml", **budget) == float(team)
    assert value(after, "cockpit_budget_limit_credits", scope="team:research/ml", **budget) == 25
    assert value(after, "cockpit_budget_used_credits", scope="pool", **budget) == float(pool)
    assert value(after, "cockpit_budget_limit_credits", scope="pool", **budget) == 10
    assert value(after, "cockpit_budget_used_credits", scope="account", **budget) == float(everything)
    assert value(after, "cockpit_budget_limit_credits", scope="account", **budget) == 1000
    users = {dict(labels)["scope"]: v for (name, labels), v in after.items() if name == "cockpit_budget_limit_credits" and dict(labels)["scope"].startswith("user:")}
    assert list(users.values()) == [5]  # alice's allocation, under a keyed hash of her address
    alice_label = next(iter(users))
    assert re.fullmatch(r"user:[0-9a-f]{12}", alice_label)
    assert value(after, "cockpit_budget_used_credits", scope=alice_label, **budget) == 2.5

    # The gateway's own families: calls by endpoint and model, and credits equal to the ledger's.
    call = {"endpoint": "chat.completions", "domain": "copilot", "model": "chat"}
    assert value(after, "cockpit_llm_requests_total", status="200", **call) - value(before, "cockpit_llm_requests_total", status="200", **call) == 5
    assert value(after, "cockpit_llm_requests_total", status="403", **{**call, "model": "locked"}) - value(before, "cockpit_llm_requests_total", status="403", **{**call, "model": "locked"}) == 1
    credited = value(after, "cockpit_credits_total", account="acme", model="chat") - value(before, "cockpit_credits_total", account="acme", model="chat")
    assert credited == pytest.approx(float(everything))
    assert value(after, "cockpit_budget_reservations_in_flight") == value(before, "cockpit_budget_reservations_in_flight")  # every hold settled

    assert value(after, "cockpit_snapshot_checked_timestamp_seconds", account="acme") > 0
    assert "@" not in text
    for secret in (alice, bob, dave, MASTER_KEY, METRICS_TOKEN):
        assert secret not in text


def test_metrics_are_for_the_master_key_and_the_metrics_token_only(served: tuple[InProcessServer, str]) -> None:
    server, url = served
    alice = issue_key(url, "alice@acme.com")
    get = lambda **headers: httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)  # noqa: E731
    assert get().status_code == 401
    assert get(Authorization=f"Bearer {alice}").status_code == 403
    assert get(Authorization="Bearer not-the-token").status_code == 403
    assert get(Cookie=f"token={METRICS_TOKEN}").status_code == 401  # a browser's cookie is not a scrape credential
    assert get(Authorization=f"Bearer {MASTER_KEY}").status_code == 200
    assert get(Authorization=f"Bearer {METRICS_TOKEN}").status_code == 200


def test_the_recording_functions_the_proxy_calls_land_in_their_families() -> None:
    """Each function the gateway calls, once, with distinctive labels: the exposition shows
    exactly what was recorded (per process; `cockpit serve --workers N` merges them)."""
    model = f"m-{uuid.uuid4().hex[:8]}"
    recorded.record_call("chat", "copilot", model, 200, total_seconds=0.5, upstream_seconds=0.4996)
    recorded.record_call("chat", "copilot", model, 429, total_seconds=0.001)
    recorded.record_first_chunk(model, 0.2)
    recorded.record_upstream_error(model, "timeout")
    recorded.record_usage("acme", model, input_tokens=12, output_tokens=30, credits=0.375)
    recorded.record_refusal("acme", "guardrail_blocked")
    before = samples(recorded.exposition().decode())
    recorded.reservation_opened()
    recorded.reservation_opened()
    recorded.reservation_closed()
    recorded.set_spool_depth(7)
    recorded.record_ledger_write_failure()
    found = samples(recorded.exposition().decode())

    assert value(found, "cockpit_llm_requests_total", endpoint="chat", domain="copilot", model=model, status="200") == 1
    assert value(found, "cockpit_llm_requests_total", endpoint="chat", domain="copilot", model=model, status="429") == 1
    assert value(found, "cockpit_llm_request_duration_seconds_count", endpoint="chat", model=model) == 2
    assert value(found, "cockpit_llm_time_to_first_chunk_seconds_bucket", model=model, le="0.25") == 1
    assert value(found, "cockpit_llm_time_to_first_chunk_seconds_bucket", model=model, le="0.1") == 0
    assert value(found, "cockpit_upstream_errors_total", model=model, kind="timeout") == 1
    assert value(found, "cockpit_llm_tokens_total", account="acme", model=model, direction="input") == 12
    assert value(found, "cockpit_llm_tokens_total", account="acme", model=model, direction="output") == 30
    assert value(found, "cockpit_credits_total", account="acme", model=model) == 0.375
    assert value(found, "cockpit_refusals_total", account="acme", reason="guardrail_blocked") >= 1
    assert value(found, "cockpit_budget_reservations_in_flight") - value(before, "cockpit_budget_reservations_in_flight") == 1
    assert value(found, "cockpit_ledger_spool_depth") == 7
    assert value(found, "cockpit_ledger_write_failures_total") - value(before, "cockpit_ledger_write_failures_total") == 1
    overhead = {"endpoint": "chat"}
    assert value(found, "cockpit_gateway_overhead_seconds_bucket", le="0.0005", **overhead) - value(before, "cockpit_gateway_overhead_seconds_bucket", le="0.0005", **overhead) == 0
    recorded.reservation_closed()
    recorded.set_spool_depth(0)


# -- traces ------------------------------------------------------------------------------------


def test_span_is_free_when_tracing_is_off() -> None:
    assert span("anything", {GEN_AI_REQUEST_MODEL: "m"}) is NO_SPAN
    with span("anything") as current:
        current.set_attribute("k", 1)


def test_spans_reach_an_otlp_collector_with_genai_attributes(migrated_url: str) -> None:
    engine = create_engine_for(migrated_url)
    try:
        with FakeCollector() as collector:
            assert configure_tracing({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SERVICE_NAME": "cockpit-test"})
            try:
                with TestClient(create_app(engine, {"COCKPIT_SECRET_KEY": SECRET_KEY})) as client:
                    assert client.get("/health/liveliness").status_code == 200
                    assert client.get("/v1/me/context", headers={"Authorization": "Bearer nobody-knows-this"}).status_code == 200
                    with span("chat m-1", {GEN_AI_OPERATION_NAME: "chat", GEN_AI_REQUEST_MODEL: "m-1"}) as current:
                        current.set_attribute(GEN_AI_USAGE_OUTPUT_TOKENS, 30)
                        with span("cockpit.budget.reserve", scope="team:research/ml"):
                            pass
                flush_tracing()
            finally:
                shutdown_tracing()
            spans = {found.name: found for found in collector.spans()}
    finally:
        engine.dispose()
    http = spans["GET /health/liveliness"]
    assert http.attributes["http.route"] == "/health/liveliness"
    assert http.attributes["http.response.status_code"] == 200
    assert http.resource["service.name"] == "cockpit-test"
    auth = spans["cockpit.auth"]
    assert auth.attributes == {"cockpit.auth.provider": "none"}
    assert auth.trace_id == spans["GET /v1/me/context"].trace_id and auth.parent_span_id
    assert "nobody-knows-this" not in repr(collector.spans())
    call = spans["chat m-1"]
    assert call.attributes == {GEN_AI_OPERATION_NAME: "chat", GEN_AI_REQUEST_MODEL: "m-1", GEN_AI_USAGE_OUTPUT_TOKENS: 30}
    child = spans["cockpit.budget.reserve"]
    assert child.trace_id == call.trace_id and child.parent_span_id
    assert span("after shutdown") is NO_SPAN


def test_budget_metrics_read_the_current_window_only(served: tuple[InProcessServer, str]) -> None:
    """A ledger row of an earlier window does not count toward the current one."""
    server, url = served
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            account = connection.execute(sa.select(accounts.c.id).where(accounts.c.name == "acme")).scalar()
            connection.execute(usage_ledger.insert().values(
                id=uuid.uuid4(), account_id=account, domain="copilot", org_key="research", team_key="research/ml", user_email="bob@acme.com",
                model_name="chat", raw_cost=1, credit_factor=1, credits=3, request_id=f"old-{uuid.uuid4().hex}", created_at=dt.datetime(2001, 1, 15, tzinfo=dt.timezone.utc),
            ))
    finally:
        engine.dispose()
    found = samples(scrape(server.url))
    assert value(found, "cockpit_budget_used_credits", account="acme", plan="q4", scope="team:research/ml") == 0
    assert value(found, "cockpit_budget_used_credits", account="acme", plan="q4", scope="account") == 0


def test_a_gateway_call_is_traced_through_its_governance_steps(served: tuple[InProcessServer, str]) -> None:
    """Policy, guardrails, budget and the upstream call are spans of the call's trace, the
    upstream one with the GenAI attributes; no key or e-mail address is in any of them."""
    server, url = served
    bob = issue_key(url, "bob@acme.com")
    with FakeCollector() as collector:
        assert configure_tracing({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SERVICE_NAME": "cockpit-test"})
        try:
            assert chat(server.url, bob, max_tokens=2).status_code == 200
            flush_tracing()
        finally:
            shutdown_tracing()
        found = collector.spans()
    spans = {span.name: span for span in found}
    call = spans["POST /v1/chat/completions"]
    for step in ("cockpit.auth", "cockpit.policy", "cockpit.guardrails", "cockpit.budget", "chat chat"):
        assert spans[step].trace_id == call.trace_id, step
    upstream = spans["chat chat"]
    assert upstream.attributes[GEN_AI_OPERATION_NAME] == "chat" and upstream.attributes[GEN_AI_REQUEST_MODEL] == "chat"
    assert upstream.attributes[GEN_AI_USAGE_OUTPUT_TOKENS] == 2 and upstream.attributes["gen_ai.provider.name"] == "openai"
    text = repr(found)
    assert bob not in text and "@" not in text


def test_a_killed_workers_live_gauges_leave_the_scrape(tmp_path: Path) -> None:
    """A worker of `cockpit serve --workers N` killed with holds in flight (kill -9, out of
    memory) leaves its live gauges' files behind; the next scrape must stop counting its holds
    and its spool, and keep every living worker's, the scraping one's included."""
    environ = {**os.environ, recorded.MULTIPROC_VARIABLE: str(tmp_path)}
    record = "from cockpit.observe import metrics; metrics.reservation_opened(); metrics.reservation_opened(); metrics.set_spool_depth({depth}); "
    killed = subprocess.Popen([sys.executable, "-c", record.format(depth=7) + "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], env=environ)
    assert killed.wait(60) == -signal.SIGKILL
    assert any(name.endswith(f"_{killed.pid}.db") for name in os.listdir(tmp_path))
    living = subprocess.Popen(
        [sys.executable, "-c", record.format(depth=3) + "import sys; print('ready', flush=True); sys.stdin.read()"],
        env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert living.stdout is not None and living.stdout.readline().strip() == "ready"
        scrape = subprocess.run(
            [sys.executable, "-c", record.format(depth=2) + "import sys; sys.stdout.write(metrics.exposition().decode())"],
            env=environ, capture_output=True, text=True, check=True, timeout=60,
        )
    finally:
        living.communicate("", timeout=60)
    found = samples(scrape.stdout)
    assert value(found, "cockpit_budget_reservations_in_flight") == 4.0  # the two living processes' holds
    assert value(found, "cockpit_ledger_spool_depth") == 5.0
    assert not [name for name in os.listdir(tmp_path) if name.startswith("gauge_live") and name.endswith(f"_{killed.pid}.db")]
