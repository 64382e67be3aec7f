"""The budget and cost read endpoints on SQLite and PostgreSQL: `examples/acme` applied, a second
account (globex) in another workspace, usage ledger rows and cycle records written directly.

The ledger rows (credits, acme, monthly plan fy26-q1, in the current window unless noted):

    research / research/ml / alice        125   agent helpdesk, gpt-4o, github, pii-strict
    engineering / engineering/platform   6500   code-reviewer, claude-sonnet   (100% of the 6500 override)
    engineering / engineering/sre        3700   code-reviewer, claude-sonnet   (92.5% of 4000)
    engineering / engineering/frontend   2500   helpdesk, gpt-4o-mini          (83.3% of 3000)
    no attribution                         40   -> the pool
    console: research                      50   gpt-4o (console ledger: the account level only)
    research / research/ml, last window 99999   outside the window: costs only
    globex: research / research/ml        400   another tenant: never in acme's answers
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cockpit.budgets.usage import cycle_window
from cockpit.server.app import create_app
from cockpit.store.tables import budget_cycles
from harness.budgets_api import ACME, GLOBEX, MASTER_KEY, SUPER, Api
from harness.cockpit import Cockpit


def in_window(seconds: int = 1) -> dt.datetime:
    return cycle_window("monthly").start + dt.timedelta(seconds=seconds)


def acme_usage(api: Api) -> None:
    now, before = in_window(), cycle_window("monthly").start - dt.timedelta(days=1)

    def row(credits: float, created_at: dt.datetime = now, account: uuid.UUID | None = None, **fields: Any) -> dict[str, Any]:
        return {"account_id": account or api.acme, "credits": credits, "raw_cost": credits / 1.25, "credit_factor": 1.25, "created_at": created_at, **fields}

    research = {"org_key": "research", "team_key": "research/ml", "user_email": "alice.nguyen@acme.com"}
    api.ledger([
        row(125, **research, agent_name="helpdesk", model_name="gpt-4o", connection_name="github", guardrail_code="pii-strict"),
        row(6500, org_key="engineering", team_key="engineering/platform", agent_name="code-reviewer", model_name="claude-sonnet"),
        row(3700, org_key="engineering", team_key="engineering/sre", agent_name="code-reviewer", model_name="claude-sonnet"),
        row(2500, org_key="engineering", team_key="engineering/frontend", agent_name="helpdesk", model_name="gpt-4o-mini"),
        row(40, model_name="gpt-4o-mini"),
        row(50, domain="console", org_key="research", model_name="gpt-4o"),
        row(99999, created_at=before, **research, agent_name="helpdesk", model_name="gpt-4o"),
        row(400, account=api.globex, org_key="research", team_key="research/ml", agent_name="spy-agent", model_name="spy-model"),
    ])


@pytest.fixture
def api(cockpit: Cockpit, tmp_path: Path) -> Any:
    made = Api(cockpit, tmp_path)
    yield made
    made.close()


def by_scope(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["scope"]: i for i in items}


# -- account allocation ----------------------------------------------------------------------------

def test_account_allocation_is_for_super_admins(api: Api) -> None:
    everyone = api.ok("/v1/budgets/account-allocation", SUPER)
    assert everyone["total"] == 2
    assert {i["account_name"] for i in everyone["items"]} == {"acme", "globex"}
    first = api.ok("/v1/budgets/account-allocation", SUPER, limit=1)
    assert len(first["items"]) == 1 and first["total"] == 2
    second = api.ok("/v1/budgets/account-allocation", SUPER, limit=1, offset=1)
    assert second["items"][0]["account_name"] != first["items"][0]["account_name"]

    by_name = api.ok("/v1/budgets/account-allocation", SUPER, account_id="acme")["item"]
    assert by_name == api.ok("/v1/budgets/account-allocation", SUPER, account_id=str(api.acme))["item"]
    assert (by_name["monthly_credits"], by_name["overflow_limit"], by_name["credit_factor"]) == (50000, 5000, 1.25)
    assert by_name["account_id"] == str(api.acme)

    missing = api.get("/v1/budgets/account-allocation", SUPER, account_id="nobody")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Account not found"})
    anonymous = api.client.get("/v1/budgets/account-allocation")
    assert (anonymous.status_code, anonymous.json()) == (403, {"detail": "Super admin access required"})


def test_copilot_account_allocation_is_the_callers_account(api: Api) -> None:
    acme = api.ok("/v1/budgets/copilot/account-allocation")["item"]
    globex = api.ok("/v1/budgets/copilot/account-allocation", GLOBEX)["item"]
    assert (acme["monthly_credits"], acme["account_id"]) == (50000, str(api.acme))
    assert (globex["monthly_credits"], globex["credit_factor"], globex["account_id"]) == (777, 2, str(api.globex))
    no_account = api.get("/v1/budgets/copilot/account-allocation", SUPER)
    assert (no_account.status_code, no_account.json()) == (403, {"detail": "Account context required"})


# -- plans and effective allocation -----------------------------------------------------------------

def test_active_plan(api: Api) -> None:
    plan = api.ok("/v1/budgets/copilot/plans/active")["item"]
    assert (plan["name"], plan["cycle"], plan["status"], plan["active"]) == ("fy26-q1", "monthly", "active", True)
    assert plan["id"] == api.row_id("SELECT id FROM budget_plans WHERE name = 'fy26-q1'")
    assert plan["window"]["start"] == cycle_window("monthly").start.isoformat().replace("+00:00", "Z")
    globex = api.ok("/v1/budgets/copilot/plans/active", GLOBEX)["item"]
    assert (globex["name"], globex["cycle"]) == ("globex-plan", "quarterly")
    assert globex["window"] == cycle_window("quarterly").as_dict()


def test_effective_allocation_applies_overrides_and_equal_shares(api: Api) -> None:
    body = api.ok("/v1/budgets/copilot/effective-allocation")
    assert (body["plan_name"], body["account_id"]) == ("fy26-q1", str(api.acme))
    assert body["plan_id"] == api.row_id("SELECT id FROM budget_plans WHERE name = 'fy26-q1'")
    assert (body["monthly_credits"], body["distributed"], body["unallocated"]) == (50000, 48000, 2000)
    count = api.scalar(
        "SELECT count(*) FROM budget_allocations b JOIN budget_plans p ON b.plan_id = p.id WHERE p.name = 'fy26-q1'"
    )
    assert body["total"] == count == len(body["items"])
    scopes = by_scope(body["items"])
    ml = scopes["team:research/ml"]
    assert (ml["base_allocated"], ml["effective_allocated"], ml["override_applied"], ml["source"]) == (3333.33, 4000, True, "equal")
    assert ml["reason"] == "Q1 fine-tuning experiments" and ml["inside"] == ["org:research"]
    assert ml["scope_id"] == api.team_id("acme", "research", "ml")
    assert scopes["team:research/data"]["effective_allocated"] == 3333.34          # the odd hundredth
    assert scopes["org:research"]["scope_id"] == api.org_id("acme", "research")
    user = scopes["user:dana.white@acme.com"]
    assert user["scope_id"] == api.row_id("SELECT id FROM copilot_users WHERE email = 'dana.white@acme.com'")
    assert scopes["pool"]["scope_type"] == "pool"

    page = api.ok("/v1/budgets/copilot/effective-allocation", limit=5, offset=5)
    assert page["total"] == count and page["items"] == body["items"][5:10]


def test_effective_allocation_of_a_named_plan_and_unknown_plans(api: Api) -> None:
    fy25_id = api.row_id("SELECT id FROM budget_plans WHERE name = 'fy25-q4'")
    by_name = api.ok("/v1/budgets/copilot/effective-allocation", plan_id="fy25-q4")
    by_id = api.ok("/v1/budgets/copilot/effective-allocation", plan_id=fy25_id)
    assert by_name == by_id
    assert (by_name["plan_id"], by_name["cycle"], by_name["active"]) == (fy25_id, "quarterly", False)
    assert by_scope(by_name["items"])["team:engineering/backend"]["effective_allocated"] == 7000

    globex_plan = api.row_id("SELECT id FROM budget_plans WHERE name = 'globex-plan'")
    for unknown in ("nope", str(uuid.uuid4()), globex_plan, "globex-plan"):
        response = api.get("/v1/budgets/copilot/effective-allocation", plan_id=unknown)
        assert (response.status_code, response.json()) == (404, {"detail": "Budget plan not found"}), unknown
    mine = api.ok("/v1/budgets/copilot/effective-allocation", GLOBEX, plan_id=globex_plan)
    assert [i["scope"] for i in mine["items"]] == ["org:research", "team:research/ml"]
    assert by_scope(mine["items"])["org:research"]["scope_id"] == api.org_id("globex", "research")


# -- usage and alerts ------------------------------------------------------------------------------

def test_usage_counts_this_window_by_attribution(api: Api) -> None:
    acme_usage(api)
    body = api.ok("/v1/budgets/copilot/usage-by-scope")
    assert body["window"] == cycle_window("monthly").as_dict()
    scopes = by_scope(body["items"])
    ml = scopes["team:research/ml"]
    assert (ml["used"], ml["allocated_credits"], ml["base_allocated"]) == (125, 4000, 3333.33)
    assert ml["usage_percentage"] == pytest.approx(3.125, abs=0.006)
    assert ml["remaining"] == 4000 + 300 - 125
    assert ml["scope_id"] == api.team_id("acme", "research", "ml")
    assert scopes["org:research"]["used"] == 125                    # last window's 99,999 do not count
    assert scopes["org:engineering"]["used"] == 12700
    platform = scopes["team:engineering/platform"]
    assert (platform["used"], platform["usage_percentage"], platform["overflow_used"], platform["remaining"]) == (6500, 100, 0, 500)
    assert scopes["pool"]["used"] == 40
    assert scopes["org:sales"]["used"] == 0 and scopes["org:sales"]["remaining"] == 9500
    account = body["account"]
    assert account["used"] == 125 + 6500 + 3700 + 2500 + 40 + 50      # console too; not globex's 400
    assert account["remaining"] == 55000 - account["used"]

    globex = by_scope(api.ok("/v1/budgets/copilot/usage-by-scope", GLOBEX)["items"])
    assert globex["org:research"]["used"] == 400 and globex["team:research/ml"]["used"] == 400
    assert globex["team:research/ml"]["usage_percentage"] == 400


def test_usage_of_a_past_window_row_only(api: Api) -> None:
    before = cycle_window("monthly").start - dt.timedelta(seconds=1)
    api.ledger([{"account_id": api.acme, "org_key": "research", "credits": 10, "created_at": before}])
    assert by_scope(api.ok("/v1/budgets/copilot/usage-by-scope")["items"])["org:research"]["used"] == 0


def test_alert_levels(api: Api) -> None:
    acme_usage(api)
    body = api.ok("/v1/budgets/copilot/alerts")
    assert body["threshold"] == 80
    found = [(a["entity_name"], a["alert_level"], a["usage_percentage"]) for a in body["items"]]
    assert found == [("platform", "exceeded", 100), ("sre", "critical", 92.5), ("frontend", "warning", 83.33)]
    assert body["total"] == 3
    platform = body["items"][0]
    assert platform["budget"] == {"entity_type": "TEAM", "entity_id": api.team_id("acme", "engineering", "platform")}

    assert [a["entity_name"] for a in api.ok("/v1/budgets/copilot/alerts", threshold=95)["items"]] == ["platform"]
    assert api.ok("/v1/budgets/copilot/alerts", threshold=1000)["items"] == []
    everything = api.ok("/v1/budgets/copilot/alerts", threshold=0, limit=2)
    allocations = api.scalar("SELECT count(*) FROM budget_allocations b JOIN budget_plans p ON b.plan_id = p.id WHERE p.name = 'fy26-q1'")
    assert len(everything["items"]) == 2 and everything["total"] == allocations + 1      # and the account
    for bad in (-1, 1001):
        assert api.get("/v1/budgets/copilot/alerts", threshold=bad).status_code == 422

    api.ledger([{"account_id": api.acme, "org_key": "sales", "credits": 50000, "created_at": in_window()}])
    levels = {a["scope"]: a["alert_level"] for a in api.ok("/v1/budgets/copilot/alerts")["items"]}
    assert levels["account"] == "exceeded" and levels["org:sales"] == "exceeded"


def test_no_active_plan(api: Api, cockpit: Cockpit) -> None:
    with api.engine.begin() as connection:
        connection.execute(sa.text("UPDATE budget_plans SET active = false"))
    # The snapshot follows audit events; a direct UPDATE writes none, so use a fresh app.
    client = TestClient(create_app(api.engine, {"COCKPIT_MASTER_KEY": MASTER_KEY}))
    assert client.get("/v1/budgets/copilot/plans/active", headers=ACME).json() == {"item": None}
    for path in ("/v1/budgets/copilot/usage-by-scope", "/v1/budgets/copilot/effective-allocation"):
        body = client.get(path, headers=ACME).json()
        assert (body["plan_id"], body["items"], body["total"]) == (None, [], 0)
    client.close()


# -- costs -----------------------------------------------------------------------------------------

def test_copilot_cost_breakdown(api: Api) -> None:
    acme_usage(api)
    agents = api.ok("/v1/budgets/copilot/cost-breakdown")
    assert agents["by"] == "agent"
    assert [(i["key"], i["credits"]) for i in agents["items"]] == [
        ("helpdesk", 99999 + 2500 + 125), ("code-reviewer", 10200), (None, 40),
    ]
    assert agents["items"][0]["agent_id"] == api.row_id("SELECT id FROM agents WHERE name = 'helpdesk'")
    assert agents["items"][0]["raw_cost"] == pytest.approx((99999 + 2500 + 125) / 1.25)
    llm = api.ok("/v1/budgets/copilot/cost-breakdown", by="llm")
    assert [i["key"] for i in llm["items"]] == ["gpt-4o", "claude-sonnet", "gpt-4o-mini"]
    assert "spy-model" not in str(llm) and "spy-agent" not in str(agents)
    this_window = api.ok("/v1/budgets/copilot/cost-breakdown", by="guardrail", since=cycle_window("monthly").start.isoformat())
    assert {i["key"]: i["credits"] for i in this_window["items"]} == {"pii-strict": 125, None: 6500 + 3700 + 2500 + 40}
    connection = api.ok("/v1/budgets/copilot/cost-breakdown", by="connection", limit=1)
    assert connection["total"] == 2 and len(connection["items"]) == 1
    bad = api.get("/v1/budgets/copilot/cost-breakdown", by="team")
    assert (bad.status_code, bad.json()) == (400, {"detail": "by must be one of: agent,llm,connection,guardrail"})


def test_costs_breakdown_filters_by_ids_or_keys(api: Api) -> None:
    acme_usage(api)
    everything = api.ok("/v1/costs/breakdown")
    assert everything["domain"] == "copilot" and everything["total"] == 5
    top = everything["items"][0]
    assert (top["model_name"], top["agent_name"], top["credits_incurred"]) == ("gpt-4o", "helpdesk", 99999)
    assert top["agent_id"] == api.row_id("SELECT id FROM agents WHERE name = 'helpdesk'")

    research = api.org_id("acme", "research")
    by_id = api.ok("/v1/costs/breakdown", org_id=research)
    assert by_id == api.ok("/v1/costs/breakdown", org_id="research")
    assert sorted(i["credits_incurred"] for i in by_id["items"]) == [125, 99999]
    team = api.ok("/v1/costs/breakdown", team_id=api.team_id("acme", "engineering", "sre"))
    assert [i["credits_incurred"] for i in team["items"]] == [3700]
    assert api.ok("/v1/costs/breakdown", team_id="engineering/sre")["items"] == team["items"]
    user = api.ok("/v1/costs/breakdown", user_id="Alice.Nguyen@acme.com", org_id="research")
    assert sorted(i["credits_incurred"] for i in user["items"]) == [125, 99999]
    assert api.ok("/v1/costs/breakdown", org_id="research", team_id="engineering/sre")["items"] == []
    # Another account's org id names nothing here.
    assert api.ok("/v1/costs/breakdown", org_id=api.org_id("globex", "research"))["items"] == []

    console = api.ok("/v1/costs/breakdown", domain="console")
    assert [(i["model_name"], i["credits_incurred"]) for i in console["items"]] == [("gpt-4o", 50)]
    assert api.ok("/v1/costs/breakdown", domain="console", org_id=api.org_id("acme", "research", "console"))["total"] == 1
    bad = api.get("/v1/costs/breakdown", domain="billing")
    assert bad.status_code == 400
    assert api.client.get("/v1/costs/breakdown").json() == {"detail": "Account context required"}
    assert [i["credits_incurred"] for i in api.ok("/v1/costs/breakdown", GLOBEX)["items"]] == [400]


# -- cycles ----------------------------------------------------------------------------------------

def test_cycle_history_newest_first_and_paged(api: Api) -> None:
    start = cycle_window("monthly").start
    rows = [
        {"account_id": api.acme, "plan_name": "fy26-q1", "window_start": start - dt.timedelta(days=60), "window_end": start - dt.timedelta(days=30),
         "used_credits": 100, "overflow_charge": 0, "rollover_credits": 10, "summary": {"note": "older"}, "created_at": start - dt.timedelta(days=29)},
        {"account_id": api.acme, "plan_name": "fy26-q1", "window_start": start - dt.timedelta(days=30), "window_end": start,
         "used_credits": 52000, "overflow_charge": 2000, "rollover_credits": 0, "summary": {"note": "newer"}, "created_at": start},
        {"account_id": api.globex, "plan_name": "globex-plan", "window_start": start, "window_end": start,
         "used_credits": 1, "overflow_charge": 0, "rollover_credits": 0, "summary": {}, "created_at": start},
    ]
    with api.engine.begin() as connection:
        connection.execute(budget_cycles.insert(), [{"id": uuid.uuid4(), **r} for r in rows])
    body = api.ok("/v1/budgets/copilot/cycles/history")
    assert body["total"] == 2
    newest = body["items"][0]
    assert (newest["summary_json"], newest["used_credits"], newest["overflow_charge_credits"]) == ({"note": "newer"}, 52000, 2000)
    assert newest["plan_id"] == api.row_id("SELECT id FROM budget_plans WHERE name = 'fy26-q1'")
    assert body["items"][1]["summary_json"] == {"note": "older"}
    assert api.ok("/v1/budgets/copilot/cycles/history", GLOBEX)["items"][0]["plan_name"] == "globex-plan"

    many = [
        {"id": uuid.uuid4(), "account_id": api.acme, "plan_name": "bulk", "window_start": start + dt.timedelta(minutes=i),
         "window_end": start + dt.timedelta(days=1), "created_at": start - dt.timedelta(days=100)}
        for i in range(1100)
    ]
    with api.engine.begin() as connection:
        connection.execute(budget_cycles.insert(), many)
    capped = api.ok("/v1/budgets/copilot/cycles/history", limit=5000)
    assert (len(capped["items"]), capped["total"]) == (1000, 1102)
    assert capped["items"][0]["summary_json"] == {"note": "newer"}
    default = api.ok("/v1/budgets/copilot/cycles/history")
    assert len(default["items"]) == 100
    tail = api.ok("/v1/budgets/copilot/cycles/history", offset=1100)
    assert len(tail["items"]) == 2


def test_budget_endpoints_never_show_another_account(api: Api) -> None:
    acme_usage(api)
    globex_ids = {
        str(api.globex), api.org_id("globex", "research"), api.team_id("globex", "research", "ml"),
        api.row_id("SELECT id FROM budget_plans WHERE name = 'globex-plan'"),
    }
    for path in (
        "/v1/budgets/copilot/account-allocation", "/v1/budgets/copilot/plans/active",
        "/v1/budgets/copilot/effective-allocation", "/v1/budgets/copilot/usage-by-scope",
        "/v1/budgets/copilot/alerts?threshold=0", "/v1/budgets/copilot/cost-breakdown",
        "/v1/costs/breakdown", "/v1/budgets/copilot/cycles/history",
    ):
        text = api.get(path).text
        assert not any(i in text for i in globex_ids), path
        assert "globex" not in text and "spy" not in text, path
