"""`cockpit budgets renew`: cycle records, rollover into the next pool, and the proxy's
counters starting over in the new window."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from cockpit.budgets.usage import UTC, cycle_window
from cockpit.store.engine import create_engine_for
from cockpit.store.tables import accounts, budget_cycles, usage_ledger
from fakes.openai import FakeOpenAI, serve_openai
from harness.cockpit import Cockpit
from harness.proxy import InProcessServer, chat, issue_key, tenant


@pytest.fixture
def cockpit(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cockpit:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake-upstream")
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    runner.write(tenant("http://127.0.0.1:9/v1"))
    assert runner.apply().exit_code == 0
    return runner


def spend(url: str, amount: str, at: dt.datetime, domain: str = "copilot") -> None:
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            account_id = connection.execute(sa.select(accounts.c.id).where(accounts.c.name == "acme")).scalar()
            connection.execute(usage_ledger.insert().values(
                id=uuid.uuid4(), account_id=account_id, domain=domain, user_email="bob@acme.com", team_key="research/ml", org_key="research",
                raw_cost=Decimal(amount), credit_factor=Decimal(1), credits=Decimal(amount), request_id=uuid.uuid4().hex, created_at=at,
            ))
    finally:
        engine.dispose()


def records(url: str) -> list[sa.Row]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.select(budget_cycles).order_by(budget_cycles.c.window_start)).all()
    finally:
        engine.dispose()


def test_renew_writes_the_cycle_record(cockpit: Cockpit) -> None:
    now = dt.datetime.now(UTC)
    spend(cockpit.url, "700.25", now - dt.timedelta(seconds=5))
    spend(cockpit.url, "500", now - dt.timedelta(seconds=4), domain="console")  # the account cap counts both domains
    spend(cockpit.url, "99", cycle_window("monthly", now).start - dt.timedelta(days=2))  # last month: not this cycle
    result = cockpit.run("budgets", "renew", "--account", "acme", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    # monthly 1000; top level distributed = team 25 + pool 10 (alice's 5 nests in the team).
    assert (record["used_credits"], record["overflow_charge_credits"], record["rollover_credits"]) == (1200.25, 200.25, 965.0)
    assert record["window"]["start"] == cycle_window("monthly", now).as_dict()["start"] and record["created"]
    [row] = records(cockpit.url)
    assert Decimal(str(row.used_credits)) == Decimal("1200.25") and row.plan_name == "q4"
    assert cockpit.scalar("SELECT count(*) FROM audit_events WHERE action = 'renew' AND kind = 'BudgetCycle'") == 1
    capped = cockpit.run("budgets", "renew", "--account", "acme", "--rollover-cap", "5", "--json")
    second = json.loads(capped.output)
    assert second["window"]["start"] == record["window"]["end"]  # the next cycle began where the first closed
    assert (second["used_credits"], second["rollover_credits"]) == (0.0, 5.0)
    assert cockpit.scalar("SELECT count(*) FROM budget_plans") == 1  # plans stay the config's
    engine = create_engine_for(cockpit.url)
    try:
        from cockpit.budgets.usage import current_window

        with engine.connect() as connection:
            account_id = connection.execute(sa.select(accounts.c.id)).scalar()
            assert current_window(connection, account_id, "monthly").as_dict()["start"] == second["window"]["end"]
    finally:
        engine.dispose()
    assert cockpit.plan().exit_code == 0


def test_renew_previous_closes_last_month_once(cockpit: Cockpit) -> None:
    last_month = cycle_window("monthly").start - dt.timedelta(days=3)
    spend(cockpit.url, "12.5", last_month)
    first = cockpit.run("budgets", "renew", "--account", "acme", "--previous")
    assert first.exit_code == 0 and first.output.startswith("Closed cycle") and "12.50 credits used" in first.output
    again = cockpit.run("budgets", "renew", "--account", "acme", "--previous")
    assert again.exit_code == 0 and again.output.startswith("Already closed")
    [row] = records(cockpit.url)
    assert row.window_end.replace(tzinfo=UTC) == cycle_window("monthly").start


def test_renew_refuses_clearly(cockpit: Cockpit) -> None:
    missing = cockpit.run("budgets", "renew", "--account", "initech")
    assert missing.exit_code == 1 and "initech" in missing.output and "Traceback" not in missing.output
    cockpit.write(tenant("http://127.0.0.1:9/v1").split("---\napiVersion: cockpit/v1\nkind: BudgetPlan")[0])
    assert cockpit.apply("--allow-delete").exit_code == 0
    no_plan = cockpit.run("budgets", "renew", "--account", "acme")
    assert no_plan.exit_code == 1 and "no active budget plan" in no_plan.output


def test_proxy_counts_from_zero_after_renewal_with_the_rollover_in_the_pool(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream: FakeOpenAI = serve_openai()
    try:
        monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
        cockpit = Cockpit(migrated_url, tmp_path, monkeypatch)
        cockpit.write(tenant(upstream.url))
        assert cockpit.apply().exit_code == 0
        dave = issue_key(migrated_url, "dave@acme.com")  # no team: the pool (10 credits) limits him
        with InProcessServer(migrated_url, {"REDIS_URL": ""}) as server:
            assert [chat(server.url, dave, max_tokens=2).status_code for _ in range(5)] == [200] * 4 + [429]
            server.flush()
            renewed = cockpit.run("budgets", "renew", "--account", "acme", "--rollover-cap", "5", "--json")
            assert json.loads(renewed.output)["used_credits"] == 10.0
            # The renewal's audit event makes servers reload within the snapshot TTL (2 s).
            deadline = time.monotonic() + 6
            while chat(server.url, dave, max_tokens=2).status_code == 429:
                assert time.monotonic() < deadline, "the server did not see the new cycle"
                time.sleep(0.2)
            served = 1
            while chat(server.url, dave, max_tokens=2).status_code == 200:
                served += 1
                assert served < 20
            assert served == 6  # (10 pool + 5 rolled over) / 2.5
    finally:
        upstream.stop()
