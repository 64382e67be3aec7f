"""Access impact between two states: who gains or loses a model, agent, connection or listing,
and which budget scopes of the active plan change."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from cockpit.config.validate import validate_path
from cockpit.policy.impact import AccessChange
from cockpit.policy.graph import build_graphs
from cockpit.policy.impact import access_impact, account_impact
from cockpit.resources.desired import desired_state
from cockpit.resources.state import Resource, State

ACME = Path(__file__).resolve().parent.parent / "examples" / "acme"

TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: t
allocation: {monthly_credits: 1000}
---
apiVersion: cockpit/v1
kind: Model
name: m1
litellm: {model: openai/m1}
pricing: {input_per_million: 1, output_per_million: 1}
---
apiVersion: cockpit/v1
kind: Model
name: m2
litellm: {model: openai/m2}
pricing: {input_per_million: 1, output_per_million: 1}
---
apiVersion: cockpit/v1
kind: Directory
account: t
domain: copilot
users: [{email: ann@t.io}, {email: bob@t.io}, {email: dan@t.io}]
orgs:
  - name: r
    teams:
      - {name: ml, members: [{user: ann@t.io}, {user: bob@t.io}]}
---
apiVersion: cockpit/v1
kind: ModelAccess
account: t
domain: copilot
grants:
  - {model: m2, scope: account}
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: t
code: base
name: Baseline
---
apiVersion: cockpit/v1
kind: Agent
account: t
name: helper
guardrails: [base]
grants: [team:r/ml]
---
apiVersion: cockpit/v1
kind: Connection
account: t
name: crm
type: openapi
grants: [{scope: user:bob@t.io}]
---
apiVersion: cockpit/v1
kind: MarketplaceListing
account: t
entity: agent:helper
title: Helper
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: t
name: now
allocations:
  - {scope: org:r, credits: 500}
  - {scope: pool, credits: 100}
distribute_equally:
  - {scopes: [user:ann@t.io, user:bob@t.io], total_credits: 100}
"""


def state_of(tmp_path: Path, text: str = TENANT) -> State:
    root = tmp_path / f"repo{len(list(tmp_path.iterdir()))}"
    root.mkdir()
    (root / "t.yaml").write_text(text)
    result = validate_path(root)
    assert result.ok, [str(d) for d in result.diagnostics]
    return desired_state(result.tenant, fingerprint=lambda *a: None)


def test_a_grant_added_is_a_gain(tmp_path: Path) -> None:
    before = state_of(tmp_path)
    after = state_of(tmp_path, TENANT.replace("  - {model: m2, scope: account}\n", "  - {model: m2, scope: account}\n  - {model: m1, scope: team:r/ml}\n"))
    assert access_impact(before, after) == (
        AccessChange("t", "copilot", "user:ann@t.io", "model", "m1", True),
        AccessChange("t", "copilot", "user:bob@t.io", "model", "m1", True),
    )
    assert access_impact(after, before) == (
        AccessChange("t", "copilot", "user:ann@t.io", "model", "m1", False),
        AccessChange("t", "copilot", "user:bob@t.io", "model", "m1", False),
    )


def test_a_removed_user_loses_everything_and_a_new_one_gains_everything(tmp_path: Path) -> None:
    before = state_of(tmp_path)
    after = state_of(
        tmp_path,
        TENANT.replace("{email: bob@t.io}, ", "")
        .replace(", {user: bob@t.io}", "")
        .replace("[{scope: user:bob@t.io}]", "[{scope: team:r/ml}]")
        .replace("[user:ann@t.io, user:bob@t.io]", "[user:ann@t.io]"),
    )
    bob = [c for c in access_impact(before, after) if c.subject == "user:bob@t.io"]
    assert [(c.what, c.name, c.gains, c.before, c.after) for c in bob] == [
        ("agent", "helper", False, None, None),
        ("budget", "now", None, 50.0, None),
        ("connection", "crm", False, None, None),
        ("listing", "agent:helper", False, None, None),
        ("model", "m2", False, None, None),
    ]
    created = [c for c in access_impact(after, before) if c.subject == "user:bob@t.io"]
    assert [(c.what, c.name, c.gains) for c in created] == [
        ("agent", "helper", True), ("budget", "now", None), ("connection", "crm", True),
        ("listing", "agent:helper", True), ("model", "m2", True),
    ]


def test_budget_changes_of_the_active_plan(tmp_path: Path) -> None:
    before = state_of(tmp_path)
    after = state_of(tmp_path, TENANT.replace("credits: 500}", "credits: 400}").replace("total_credits: 100", "total_credits: 100.01"))
    budget = [c for c in access_impact(before, after) if c.what == "budget"]
    assert budget == [
        AccessChange("t", "copilot", "org:r", "budget", "now", None, 500.0, 400.0),
        AccessChange("t", "copilot", "user:ann@t.io", "budget", "now", None, 50.0, 50.01),
    ]
    # an allocation that appears or goes has None on the other side; an inactive plan is not shown
    gone = state_of(tmp_path, TENANT.replace("  - {scope: pool, credits: 100}\n", ""))
    assert [(c.subject, c.before, c.after) for c in access_impact(before, gone)] == [("pool", 100.0, None)]
    inactive = state_of(tmp_path, TENANT.replace("name: now\n", "name: now\nactive: false\n"))
    assert {(c.subject, c.before, c.after) for c in access_impact(before, inactive)} == {
        ("org:r", 500.0, None), ("pool", 100.0, None), ("user:ann@t.io", 50.0, None), ("user:bob@t.io", 50.0, None),
    }


def test_a_new_account_gains_everything_in_order(tmp_path: Path) -> None:
    state = state_of(tmp_path)
    impact = access_impact(State(), state)
    assert impact == tuple(sorted(impact, key=lambda c: (c.account, c.domain, c.subject, c.what, c.name)))
    assert all(c.gains for c in impact if c.what != "budget")
    assert AccessChange("t", "copilot", "user:dan@t.io", "model", "m2", True) in impact
    assert AccessChange("t", "copilot", "pool", "budget", "now", None, None, 100.0) in impact
    assert access_impact(state, state) == ()


def test_origins_do_not_count_as_changes(tmp_path: Path) -> None:
    """The database's state has no origins; the same content from the config is no change."""
    state = state_of(tmp_path)
    from_db = State.of(replace(r, origin=None) for r in state)
    assert access_impact(from_db, state) == ()


def _mutations(state: State, rng: random.Random) -> State:
    """A copy of `state` with a few random edits of what policy reads."""
    after = State(dict(state.resources))
    resources = [r for r in state if r.account == "acme"]
    users = [r.key[0] for r in resources if r.type == "copilot_user"]
    teams = [r.key for r in resources if r.type == "copilot_team"]
    orgs = [r.key[0] for r in resources if r.type == "copilot_org"]
    models = [r.key[0] for r in state.of_type("model")]
    removable = [r for r in resources if r.type in (
        "model_grant", "copilot_team_member", "copilot_org_admin", "agent_grant", "connection_grant",
        "marketplace_grant", "copilot_user", "console_user", "console_team_member", "agent", "connection",
        "marketplace_listing", "budget_allocation", "budget_override",
    )]
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(7)
        if choice == 0:
            victim = rng.choice(removable)
            after.resources.pop(victim.address, None)
        elif choice == 1:
            scope = rng.choice([("account", ""), ("org", rng.choice(orgs)), ("team", "/".join(rng.choice(teams))), ("user", rng.choice(users))])
            access = rng.choice(["allow", "deny"])
            after.add(Resource("model_grant", "acme", (rng.choice(["copilot", "console"]), rng.choice(models), *scope), {"access": access}))
        elif choice == 2:
            grants = [r for r in after if r.type == "model_grant"]
            grant = rng.choice(grants)
            flipped = "deny" if grant.fields["access"] == "allow" else "allow"
            after.add(replace(grant, fields={**grant.fields, "access": flipped}))
        elif choice == 3:
            team = rng.choice(teams)
            after.add(Resource("copilot_team_member", "acme", (*team, rng.choice(users)), {"role": "member"}))
        elif choice == 4:
            account = after.get(("account", "acme", ("acme",)))
            policy = {**account.fields["model_policy"], "copilot": {"allow": [], "deny": [rng.choice(models)]}}
            after.add(replace(account, fields={**account.fields, "model_policy": policy}))
        elif choice == 5:
            listing = rng.choice([r for r in after if r.type == "marketplace_listing"])
            after.add(replace(listing, fields={**listing.fields, "published": not listing.fields["published"]}))
        else:
            scope = rng.choice([("org", rng.choice(orgs)), ("team", "/".join(rng.choice(teams))), ("user", rng.choice(users))])
            kind = rng.choice(["agent_grant", "connection_grant", "marketplace_grant"])
            owner = {"agent_grant": ("helpdesk",), "connection_grant": ("github",), "marketplace_grant": ("agent", "helpdesk")}[kind]
            after.add(Resource(kind, "acme", (*owner, *scope), {"can_manage": False} if kind == "connection_grant" else {}))
    return after


@pytest.fixture(scope="module")
def acme() -> State:
    return desired_state(validate_path(ACME).tenant, fingerprint=lambda *a: None)


@pytest.mark.parametrize("seed", range(60))
def test_resolving_only_affected_users_changes_nothing(acme: State, seed: int) -> None:
    """The narrow path (only users a change can reach) agrees with resolving everyone."""
    after = _mutations(acme, random.Random(seed))
    old, new = build_graphs(acme)["acme"], build_graphs(after)["acme"]

    def key(c: AccessChange) -> tuple:
        return (c.domain, c.subject, c.what, c.name, str(c.gains), str(c.before), str(c.after))

    narrow = sorted(account_impact(old, new), key=key)
    full = sorted(account_impact(old, new, narrow=False), key=key)
    assert narrow == full
