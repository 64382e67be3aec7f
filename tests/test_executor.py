"""The apply executor (`cockpit.apply.executor.execute`) against a real, migrated database.

Plans come from `compare` of examples/acme (its secrets are files of the example) and of
states derived from it; each test runs `execute` in one transaction, then reads the database
back with `read_actual` or SQL. On SQLite, and on PostgreSQL when COCKPIT_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cockpit.apply.executor import ApplyError, RunInfo, execute
from cockpit.plan.compare import compare
from cockpit.plan.draft import PlanContext
from cockpit.plan.model import Action, Plan, ResourceChange
from cockpit.resources.state import Resource, State
from cockpit.store.engine import create_engine_for
from cockpit.store.reader import ActualState, read_actual
from cockpit.store.secrets import SecretBox
from cockpit.workspace.inputs import PlanInputs, desired_with_secrets, plan_context, validated

ACME = Path(__file__).parent.parent / "examples" / "acme"
WORKSPACE = "default"
BOX = SecretBox("test-secret-key-0123456789abcdef0123456789")
TEAM = ("copilot_team", "acme", ("engineering", "backend"))
MODEL = ("model", None, ("azure-gpt-4o",))


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = create_engine_for(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def acme() -> tuple[State, PlanContext]:
    validation = validated(ACME)
    desired, errors = desired_with_secrets(validation, BOX, {})
    assert not errors
    return desired, plan_context(validation, PlanInputs(ACME, WORKSPACE))


def actual(engine: Engine) -> ActualState:
    with engine.connect() as connection:
        return read_actual(connection, WORKSPACE)


def run_for(plan: Plan) -> RunInfo:
    return RunInfo(uuid.uuid4(), plan.plan_id, "tester", "0123abc", WORKSPACE)


def apply(engine: Engine, plan: Plan, progress=None) -> list[dict]:
    with engine.begin() as connection:
        return execute(connection, plan, read_actual(connection, WORKSPACE), BOX, run_for(plan), {}, progress)


def plan_to(engine: Engine, desired: State, context: PlanContext) -> Plan:
    return compare(desired, actual(engine).state, context)


def applied(engine: Engine, acme: tuple[State, PlanContext]) -> State:
    desired, context = acme
    apply(engine, plan_to(engine, desired, context))
    return desired


def with_fields(state: State, address, **fields) -> State:
    """`state` with one resource's fields changed."""
    changed = State(dict(state.resources))
    resource = state.get(address)
    changed.add(replace(resource, fields={**resource.fields, **fields}))
    return changed


def without(state: State, *addresses) -> State:
    return State({a: r for a, r in state.resources.items() if a not in addresses})


def count(engine: Engine, sql: str, **params) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar_one()


def test_creating_a_tenant_writes_what_the_plan_says_and_plans_to_nothing_after(engine: Engine, acme) -> None:
    desired, context = acme
    plan = plan_to(engine, desired, context)
    assert {c.action for c in plan.changes} == {Action.CREATE}
    events = apply(engine, plan)
    assert len(events) == len(plan.changes) == 319
    again = plan_to(engine, desired, context)
    assert again.changes == ()
    assert count(engine, "SELECT count(*) FROM copilot_team_members") == sum(1 for c in plan.changes if c.type == "copilot_team_member")


def test_new_accounts_and_models_belong_to_the_run_workspace(engine: Engine, acme) -> None:
    applied(engine, acme)
    assert count(engine, "SELECT count(*) FROM accounts WHERE workspace = :w", w=WORKSPACE) == 1
    assert count(engine, "SELECT count(*) FROM models WHERE workspace = :w", w=WORKSPACE) == 5
    assert count(engine, "SELECT count(*) FROM accounts WHERE protect") == 1


def test_each_change_gets_one_audit_event_of_the_run(engine: Engine, acme) -> None:
    desired, context = acme
    plan = plan_to(engine, desired, context)
    run = run_for(plan)
    with engine.begin() as connection:
        events = execute(connection, plan, read_actual(connection, WORKSPACE), BOX, run, {})
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT action, kind, resource_key, actor, commit_sha, plan_id, apply_run_id FROM audit_events")).all()
    assert len(rows) == len(events) == len(plan.changes)
    assert {(r.actor, r.commit_sha, r.plan_id) for r in rows} == {("tester", "0123abc", plan.plan_id)}
    assert {uuid.UUID(str(r.apply_run_id)) for r in rows} == {run.run_id}
    team = next(e for e in events if e["kind"] == "copilot_team" and e["resource_key"] == "acme/engineering/backend")
    assert (team["action"], team["account"], team["before"], team["after"]) == ("create", "acme", None, {"description": None})
    model = next(e for e in events if e["kind"] == "model" and e["resource_key"] == "azure-gpt-4o")
    assert model["account"] is None and model["account_id"] is None
    assert model["after"]["litellm"]["api_key"] == "${file:secrets/azure-openai-api-key}"  # the reference, never the value


def test_secrets_are_stored_encrypted_under_the_planned_fingerprint(engine: Engine, acme) -> None:
    desired, context = acme
    plan = plan_to(engine, desired, context)
    apply(engine, plan)
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT api_key_encrypted, api_key_fingerprint FROM models WHERE name = 'azure-gpt-4o'")).one()
    secret = (ACME / "secrets" / "azure-openai-api-key").read_text().strip()
    assert secret not in row.api_key_encrypted
    assert secret in BOX.decrypt_json(row.api_key_encrypted).values()
    assert row.api_key_fingerprint == desired.get(MODEL).secret_fingerprint


def test_updates_change_only_the_planned_rows(engine: Engine, acme) -> None:
    _, context = acme
    desired = applied(engine, acme)
    edited = with_fields(desired, TEAM, description="Backend services")
    plan = plan_to(engine, edited, context)
    assert [(c.action, c.address) for c in plan.changes] == [(Action.UPDATE, TEAM)]
    ids_before = actual(engine).ids
    [event] = apply(engine, plan)
    assert (event["action"], event["before"], event["after"]) == ("update", {"description": None}, {"description": "Backend services"})
    after = actual(engine)
    assert after.state.get(TEAM).fields == {"description": "Backend services"}
    assert after.ids == ids_before  # updated in place, nothing re-created
    assert plan_to(engine, edited, context).changes == ()


def test_deletes_remove_every_planned_row(engine: Engine, acme) -> None:
    _, context = acme
    desired = applied(engine, acme)
    members = [r.address for r in desired.of_type("copilot_team_member", "acme") if r.key[:2] == TEAM[2]]
    assert len(members) > 1
    plan = plan_to(engine, without(desired, *members), context)
    assert [c.action for c in plan.changes] == [Action.DELETE] * len(members)
    events = apply(engine, plan)
    assert [(e["action"], e["kind"]) for e in events] == [("delete", "copilot_team_member")] * len(members)
    state = actual(engine).state
    assert TEAM in state and not any(m in state for m in members)


def test_deletes_remove_children_before_parents(engine: Engine, acme) -> None:
    _, context = acme
    desired = applied(engine, acme)
    members = [r.address for r in desired.of_type("copilot_team_member", "acme") if r.key[:2] == TEAM[2]]
    plan = plan_to(engine, without(desired, TEAM, *members), context)
    assert [c.type for c in plan.changes] == ["copilot_team_member"] * len(members) + ["copilot_team"]
    apply(engine, plan)
    state = actual(engine).state
    assert TEAM not in state and not any(m in state for m in members)
    assert count(engine, "SELECT count(*) FROM copilot_teams WHERE name = 'backend'") == 0


def test_a_create_whose_parent_is_missing_is_refused(engine: Engine, acme) -> None:
    _, context = acme
    applied(engine, acme)
    orphan = Resource("copilot_team", "acme", ("no-such-org", "team"), {"description": None})
    plan = compare(State.of([*actual(engine).state, orphan]), actual(engine).state, context)
    with pytest.raises(ApplyError, match="copilot team no-such-org/team: its copilot_org no-such-org does not exist"):
        apply(engine, plan)
    assert count(engine, "SELECT count(*) FROM copilot_teams WHERE name = 'team'") == 0


def test_a_secret_changed_since_the_plan_is_refused(engine: Engine, acme) -> None:
    desired, context = acme
    plan = plan_to(engine, desired, context)
    tampered = tuple(replace(c, secret_fingerprint="0" * 64) if c.address == MODEL else c for c in plan.changes)
    with pytest.raises(ApplyError, match="azure-gpt-4o: the secret changed since the plan was made"):
        apply(engine, replace(plan, changes=tampered))
    assert count(engine, "SELECT count(*) FROM accounts") == 0  # rolled back with the transaction


def test_a_secret_that_no_longer_resolves_is_refused(engine: Engine, acme, tmp_path: Path) -> None:
    desired, context = acme
    plan = plan_to(engine, desired, context)
    moved = tuple(replace(c, secret_base=str(tmp_path)) if c.address == MODEL else c for c in plan.changes)
    with pytest.raises(ApplyError, match="model azure-gpt-4o: secret"):
        apply(engine, replace(plan, changes=moved))


def test_progress_counts_every_change_once(engine: Engine, acme) -> None:
    desired, context = acme
    plan = plan_to(engine, desired, context)
    seen: list[tuple[int, int]] = []
    apply(engine, plan, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(plan.changes), len(plan.changes))
    assert [done for done, _ in seen] == sorted({done for done, _ in seen})  # strictly increasing
    assert len(seen) == len({(c.action, c.type) for c in plan.changes})  # one call per batch


def test_an_empty_plan_writes_nothing(engine: Engine) -> None:
    plan = Plan(workspace=WORKSPACE, changes=())
    assert apply(engine, plan) == []
    assert count(engine, "SELECT count(*) FROM audit_events") == 0


def test_a_removed_secret_clears_its_columns(engine: Engine, acme) -> None:
    """A connection whose config no longer names a secret keeps no encrypted value."""
    _, context = acme
    desired = applied(engine, acme)
    connection_address = next(r.address for r in desired.of_type("connection", "acme") if r.secret_fingerprint)
    resource = desired.get(connection_address)
    cleared = State(dict(desired.resources))
    cleared.add(replace(resource, fields={**resource.fields, "secret_refs": {}}, secret_fingerprint=None))
    plan = plan_to(engine, cleared, context)
    [change] = plan.changes
    assert isinstance(change, ResourceChange) and change.action is Action.UPDATE
    apply(engine, plan)
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT secret_encrypted, secret_fingerprint FROM connections WHERE name = :n"), {"n": connection_address[2][0]}).one()
    assert (row.secret_encrypted, row.secret_fingerprint) == (None, None)
