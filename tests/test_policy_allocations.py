"""Effective budget allocation: an override replaces the allocation or equal share; a user's
chain is their allocated scopes, else the pool, and always the account."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.config.validate import validate_path
from cockpit.policy.allocations import budget_chain, effective_allocation
from cockpit.policy.graph import AccountGraph, account_graph
from cockpit.resources.desired import desired_state

TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: t
allocation: {monthly_credits: 1000, overflow_limit: 100}
---
apiVersion: cockpit/v1
kind: Directory
account: t
domain: copilot
users: [{email: ann@t.io}, {email: bob@t.io}, {email: cat@t.io}, {email: dan@t.io}, {email: gus@t.io}]
orgs:
  - name: r
    teams:
      - {name: ml, members: [{user: ann@t.io}, {user: bob@t.io}]}
      - {name: nlp, members: [{user: bob@t.io}, {user: cat@t.io}]}
  - name: s
    teams:
      - {name: emea, members: [{user: gus@t.io}, {user: cat@t.io}]}
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: t
name: now
allocations:
  - {scope: org:r, credits: 500, overflow_cap: 50}
  - {scope: pool, credits: 100}
  - {scope: user:dan@t.io, credits: 50.5}
  - {scope: user:ann@t.io, credits: 20}
distribute_equally:
  - {scopes: [team:r/nlp, team:r/ml], total_credits: 300.01, overflow_cap: 5}
overrides:
  - {scope: team:r/ml, credits: 200, reason: launch}
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: t
name: old
active: false
allocations:
  - {scope: org:r, credits: 800}
"""


@pytest.fixture
def graph(tmp_path: Path) -> AccountGraph:
    (tmp_path / "t.yaml").write_text(TENANT)
    result = validate_path(tmp_path)
    assert result.ok, [str(d) for d in result.diagnostics]
    return account_graph(desired_state(result.tenant, fingerprint=lambda *a: None), "t")


def test_override_replaces_the_allocation(graph: AccountGraph) -> None:
    plan = effective_allocation(graph)
    assert plan.plan == "now" and plan.active
    ml, nlp = plan.get("team:r/ml"), plan.get("team:r/nlp")
    # the odd hundredth of the equal split goes to the first scope in sorted order: r/ml
    assert (ml.credits, ml.base_credits, ml.override, ml.reason, ml.source) == (200.0, 150.01, True, "launch", "equal")
    assert (nlp.credits, nlp.base_credits, nlp.override, nlp.overflow_cap) == (150.0, 150.0, False, 5.0)
    assert [s.type for s in ml.sources] == ["budget_allocation", "budget_override"]
    assert "replaces the allocation of 150.01" in ml.why and "launch" in ml.why


def test_scopes_nest_and_the_top_level_counts_against_the_account(graph: AccountGraph) -> None:
    plan = effective_allocation(graph)
    assert [s.scope for s in plan.scopes] == [
        "org:r", "team:r/ml", "team:r/nlp", "user:ann@t.io", "user:dan@t.io", "pool",
    ]
    assert plan.get("user:ann@t.io").inside == ("team:r/ml",)
    assert plan.get("team:r/nlp").inside == ("org:r",)
    assert plan.get("org:r").inside == () and plan.get("user:dan@t.io").inside == ()
    assert (plan.distributed, plan.unallocated) == (650.5, 349.5)  # org:r + pool + dan


def test_usage_gives_what_is_left(graph: AccountGraph) -> None:
    plan = effective_allocation(graph, used={"team:r/nlp": 149.99, "org:r": 10.25})
    nlp = plan.get("team:r/nlp")
    assert (nlp.used, nlp.remaining, nlp.limit) == (149.99, 5.01, 155.0)
    assert plan.get("org:r").remaining == 539.75
    assert plan.get("pool").used is None and plan.get("pool").remaining is None


def test_a_users_chain(graph: AccountGraph) -> None:
    def chain(user: str, **kwargs) -> list[tuple[str, float]]:
        return [(a.scope, a.credits) for a in budget_chain(graph, user, **kwargs)]

    assert chain("ann@t.io") == [("user:ann@t.io", 20.0), ("team:r/ml", 200.0), ("org:r", 500.0), ("account", 1000.0)]
    assert chain("bob@t.io") == [("team:r/ml", 200.0), ("team:r/nlp", 150.0), ("org:r", 500.0), ("account", 1000.0)]
    assert chain("cat@t.io") == [("team:r/nlp", 150.0), ("org:r", 500.0), ("account", 1000.0)]
    assert chain("gus@t.io") == [("pool", 100.0), ("account", 1000.0)]  # nothing of his is allocated
    assert chain("dan@t.io") == [("user:dan@t.io", 50.5), ("account", 1000.0)]
    assert chain("ann@t.io", plan="old") == [("org:r", 800.0), ("account", 1000.0)]
    account = budget_chain(graph, "gus@t.io", used={"account": 1050})[-1]
    assert (account.overflow_cap, account.remaining) == (100.0, 50.0)


def test_inactive_plans_on_request_and_no_plan(graph: AccountGraph) -> None:
    old = effective_allocation(graph, "old")
    assert not old.active and [s.scope for s in old.scopes] == ["org:r"]
    assert effective_allocation(graph, "missing") is None
    assert budget_chain(graph, "ann@t.io", plan="missing") == ()
