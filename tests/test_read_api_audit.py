"""`GET /v1/audit` on SQLite and PostgreSQL: the events `apply` wrote, newest first, the domain
filter working, paged, and only ever the caller's account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cockpit.store.tables import audit_events

from harness.budgets_api import ACME, GLOBEX, SUPER, Api
from harness.cockpit import Cockpit


@pytest.fixture
def api(cockpit: Cockpit, tmp_path: Path) -> Any:
    made = Api(cockpit, tmp_path)
    yield made
    made.close()


def count(api: Api, *where: Any) -> int:
    query = sa.select(sa.func.count()).where(audit_events.c.account_id == api.acme, *where)
    with api.engine.connect() as connection:
        return connection.execute(query).scalar_one()


def test_audit_lists_the_accounts_events(api: Api) -> None:
    body = api.ok("/v1/audit")
    assert body["domain"] == "all"
    assert body["total"] == count(api) > 300
    assert len(body["items"]) == 100                               # the default page
    event = body["items"][0]
    assert set(event) == {
        "id", "account_id", "domain", "actor", "action", "kind", "resource_key", "before", "after",
        "plan_id", "commit_sha", "apply_run_id", "created_at", "origin",
    }
    # Where the config declared each resource, as the apply recorded it.
    grants = api.ok("/v1/audit", kind="model_grant")["items"]
    assert grants and all(e["origin"].startswith("access/models.yaml:") for e in grants)
    assert {e["account_id"] for e in body["items"]} == {str(api.acme)}
    capped = api.ok("/v1/audit", limit=5000)
    assert len(capped["items"]) == min(1000, body["total"])
    second = api.ok("/v1/audit", limit=10, offset=10)
    assert [e["id"] for e in second["items"]] == [e["id"] for e in body["items"][10:20]]


def test_audit_domain_filter(api: Api) -> None:
    seen = {}
    for domain in ("iam", "billing", "console", "copilot"):
        body = api.ok("/v1/audit", domain=domain, limit=1000)
        assert body["domain"] == domain
        assert body["total"] > 0 and {e["domain"] for e in body["items"]} == {domain}
        seen[domain] = body["total"]
    assert sum(seen.values()) == api.ok("/v1/audit")["total"]
    billing = api.ok("/v1/audit", domain="billing", limit=1000)["items"]
    assert {e["kind"] for e in billing} == {"budget_plan", "budget_allocation", "budget_override"}
    copilot = {e["kind"] for e in api.ok("/v1/audit", domain="copilot", limit=1000)["items"]}
    assert {"agent", "copilot_user", "connection"} <= copilot
    bad = api.get("/v1/audit", domain="everything")
    assert (bad.status_code, bad.json()) == (400, {"detail": "domain must be one of: all,billing,console,copilot,iam"})


def test_audit_newest_first_and_filters(api: Api, cockpit: Cockpit) -> None:
    plan = cockpit.tenant / "budgets" / "fy26-q1.yaml"
    plan.write_text(plan.read_text().replace("{scope: org:sales, credits: 9000, overflow_cap: 500}", "{scope: org:sales, credits: 8500, overflow_cap: 500}"))
    applied = cockpit.apply()
    assert applied.exit_code == 0, applied.output
    newest = api.ok("/v1/audit", limit=1)["items"][0]
    assert (newest["action"], newest["kind"], newest["domain"]) == ("update", "budget_allocation", "billing")
    assert newest["resource_key"] == "acme/fy26-q1/org/sales"
    assert (newest["before"]["credits"], newest["after"]["credits"]) == (9000, 8500)

    updates = api.ok("/v1/audit", action="update")
    assert [e["id"] for e in updates["items"]] == [newest["id"]]
    assert api.ok("/v1/audit", apply_run_id=newest["apply_run_id"])["total"] == 1
    assert api.ok("/v1/audit", plan_id=newest["plan_id"])["total"] == 1
    assert api.ok("/v1/audit", apply_run_id="not-a-run")["total"] == 0
    assert api.ok("/v1/audit", kind="budget_override")["total"] == count(api, audit_events.c.kind == "budget_override")
    assert api.ok("/v1/audit", domain="copilot", action="update")["total"] == 0
    assert api.ok("/v1/audit", since=newest["created_at"])["total"] == 1
    assert api.ok("/v1/audit", until=newest["created_at"])["total"] == count(api) - 1


def test_audit_is_per_account_and_for_account_admins(api: Api) -> None:
    acme = api.ok("/v1/audit", limit=1000)
    globex = api.ok("/v1/audit", GLOBEX, limit=1000)
    assert globex["total"] > 0 and {e["account_id"] for e in globex["items"]} == {str(api.globex)}
    assert all(e["resource_key"].startswith("globex") for e in globex["items"])
    assert not any(e["resource_key"].startswith("globex") for e in acme["items"])
    assert "globex" not in api.get("/v1/audit", ACME, limit=1000).text
    # The model catalog's events have no account: no tenant sees them.
    assert not any(e["kind"] == "model" for e in acme["items"])
    for headers in (SUPER, {}):
        refused = api.client.get("/v1/audit", headers=headers)
        assert (refused.status_code, refused.json()) == (403, {"detail": "Account context required"})
