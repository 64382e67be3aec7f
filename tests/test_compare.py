"""`compare` (the database resources of a plan) and `build_plan` (every comparator), on states
built directly: creates, updates with field diffs, deletes, unchanged resources, secrets,
protection, dropped accounts (suspended) and hard deletes, order and fingerprints."""

from __future__ import annotations

from cockpit.plan.compare import CATALOG, compare, diff_values, fingerprints
from cockpit.plan.comparators import build_plan
from cockpit.plan.draft import PlanContext, PlanDraft, PlanSources, assemble
from cockpit.plan.model import SENSITIVE, SENSITIVE_CHANGED, Action, FieldChange, Plan
from cockpit.resources.state import Resource, State

CONTEXT = PlanContext("default", frozenset({"acme"}))


def account(name: str = "acme", **fields) -> Resource:
    return Resource("account", name, (name,), {"alias": name.upper(), "status": "active", **fields})


def team(name: str, description: str | None = None, account_name: str = "acme") -> Resource:
    return Resource("copilot_team", account_name, ("eng", name), {"description": description})


def org(account_name: str = "acme") -> Resource:
    return Resource("copilot_org", account_name, ("eng",), {"description": None, "is_default_global": False})


def model(name: str, **litellm) -> Resource:
    return Resource("model", None, (name,), {"description": None, "litellm": {"model": f"openai/{name}", **litellm}})


def summary(plan: Plan) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    return [(c.action.value, c.type, c.account, c.key) for c in plan.changes]


def test_a_resource_only_desired_is_created_with_its_fields() -> None:
    wanted = Resource("model", None, ("gpt",), {"description": "d"}, secret_fingerprint="f1", protect=True, origin="models.yaml:3:1", secret_base="/repo")
    [change] = compare(State.of([wanted]), State(), CONTEXT).changes
    assert (change.action, change.address, change.before, change.after) == (Action.CREATE, wanted.address, None, {"description": "d"})
    assert (change.protect, change.origin, change.secret_fingerprint, change.secret_base) == (True, "models.yaml:3:1", "f1", "/repo")
    assert change.field_changes == ()


def test_equal_states_plan_nothing() -> None:
    state = State.of([account(), org(), team("a"), model("gpt", timeout=1.0)])
    same = State.of([account(), org(), team("a"), model("gpt", timeout=1.0 + 1e-12)])
    plan = compare(state, same, CONTEXT)
    assert plan.changes == () and not plan.has_changes and plan.exit_code == 0


def test_an_update_lists_each_changed_leaf_by_path() -> None:
    before = model("gpt", timeout=30, tags=["a", "b"], headers={"x": "1", "gone": "2"})
    after = model("gpt", timeout=31, tags=["a", "c"], headers={"x": "1", "new": "3"})
    [change] = compare(State.of([after]), State.of([before]), CONTEXT).changes
    assert change.action is Action.UPDATE
    assert change.before == before.fields and change.after == after.fields
    assert [(f.dotted, f.before, f.after) for f in change.field_changes] == [
        ("litellm.headers.gone", "2", None),
        ("litellm.headers.new", None, "3"),
        ("litellm.tags[1]", "b", "c"),
        ("litellm.timeout", 30, 31),
    ]


def test_lists_of_another_length_and_booleans_change_as_a_whole() -> None:
    before = model("gpt", tags=["a"], stream=1)
    after = model("gpt", tags=["a", "b"], stream=True)
    [change] = compare(State.of([after]), State.of([before]), CONTEXT).changes
    assert [(f.path, f.before, f.after) for f in change.field_changes] == [
        (("litellm", "stream"), 1, True),
        (("litellm", "tags"), ["a"], ["a", "b"]),
    ]


def test_a_changed_secret_is_a_sensitive_change_without_values() -> None:
    plain = model("gpt")
    cases = {("old", "new"): (SENSITIVE, SENSITIVE_CHANGED), (None, "new"): (None, SENSITIVE_CHANGED), ("old", None): (SENSITIVE, None)}
    for (was, now), expected in cases.items():
        before = Resource(plain.type, None, plain.key, plain.fields, secret_fingerprint=was)
        after = Resource(plain.type, None, plain.key, plain.fields, secret_fingerprint=now)
        [change] = compare(State.of([after]), State.of([before]), CONTEXT).changes
        assert change.field_changes == (FieldChange(("secret",), *expected, sensitive=True),)
        assert change.secret_fingerprint == now


def test_protection_switched_on_or_off_is_an_update() -> None:
    before = Resource("account", "acme", ("acme",), account().fields, protect=False)
    after = Resource("account", "acme", ("acme",), account().fields, protect=True)
    [change] = compare(State.of([after]), State.of([before]), CONTEXT).changes
    assert change.field_changes == (FieldChange(("protect",), False, True),)
    assert change.protect is True


def test_a_resource_the_config_dropped_is_deleted_and_keeps_its_protection() -> None:
    protected = Resource("agent", "acme", ("helper",), {"description": None, "definition": {}}, protect=True)
    actual = State.of([account(), org(), team("a"), protected, model("gpt")])
    plan = compare(State.of([account(), org()]), actual, CONTEXT)
    assert sorted(summary(plan)) == sorted([
        ("delete", "copilot_team", "acme", ("eng", "a")),
        ("delete", "agent", "acme", ("helper",)),
        ("delete", "model", None, ("gpt",)),
    ])
    [agent] = [c for c in plan.deletes if c.type == "agent"]
    assert (agent.before, agent.after, agent.protect) == (protected.fields, None, True)
    assert plan.has_deletes and plan.exit_code == 3


def test_an_account_no_longer_in_the_config_is_suspended_not_deleted() -> None:
    actual = State.of([account("gone"), org("gone"), team("a", account_name="gone")])
    plan = compare(State(), actual, CONTEXT)  # the config names only acme
    [change] = plan.changes
    assert (change.action, change.address) == (Action.UPDATE, ("account", "gone", ("gone",)))
    assert change.after["status"] == "suspended"
    assert change.field_changes == (FieldChange(("status",), "active", "suspended"),)
    assert "suspended" in change.reason and "--hard-delete-accounts" in change.reason
    assert not plan.has_deletes


def test_an_account_already_suspended_plans_nothing() -> None:
    actual = State.of([account("gone", status="suspended"), org("gone")])
    assert compare(State(), actual, CONTEXT).changes == ()


def test_a_hard_deleted_account_loses_everything_children_first() -> None:
    actual = State.of([account("gone"), org("gone"), team("a", account_name="gone"), team("b", account_name="gone")])
    context = PlanContext("default", frozenset({"acme"}), hard_delete_accounts=frozenset({"gone"}))
    plan = compare(State(), actual, context)
    assert summary(plan) == [
        ("delete", "copilot_team", "gone", ("eng", "a")),
        ("delete", "copilot_team", "gone", ("eng", "b")),
        ("delete", "copilot_org", "gone", ("eng",)),
        ("delete", "account", "gone", ("gone",)),
    ]


def test_deletes_come_first_then_creates_and_updates_parents_first() -> None:
    actual = State.of([account(alias="old"), org(), team("old")])
    desired = State.of([team("z"), team("new"), org(), account(alias="new"), model("gpt")])
    assert summary(compare(desired, actual, CONTEXT)) == [
        ("delete", "copilot_team", "acme", ("eng", "old")),
        ("update", "account", "acme", ("acme",)),
        ("create", "model", None, ("gpt",)),
        ("create", "copilot_team", "acme", ("eng", "new")),
        ("create", "copilot_team", "acme", ("eng", "z")),
    ]


def test_the_plan_carries_the_context_and_the_actual_fingerprints() -> None:
    actual = State.of([account(), model("gpt")])
    context = PlanContext("team-a", frozenset({"acme"}), warnings=("careful",), config_path="/repo")
    plan = compare(actual, actual, context)
    assert (plan.workspace, plan.warnings, plan.config_path) == ("team-a", ("careful",), "/repo")
    assert plan.fingerprints == fingerprints(actual) and set(plan.fingerprints) == {"acme", CATALOG}
    assert plan.plan_id and plan.created_at.endswith("Z")


def test_fingerprints_follow_content_not_insertion_order() -> None:
    one = State.of([account(), org(), team("a"), team("b")])
    other = State.of([team("b"), team("a"), org(), account()])
    assert fingerprints(one) == fingerprints(other)
    moved = fingerprints(State.of([account(), org(), team("a", "x"), team("b")]))
    assert moved["acme"] != fingerprints(one)["acme"]
    protected = State.of([account(), org(), team("a"), Resource("copilot_team", "acme", ("eng", "b"), {"description": None}, protect=True)])
    assert fingerprints(protected)["acme"] != fingerprints(one)["acme"]


def test_diff_values_walks_mappings_and_equal_length_lists() -> None:
    assert list(diff_values(("f",), {"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]})) == [FieldChange(("f", "a", 1, "b"), 2, 3)]
    assert list(diff_values(("f",), 0.1 + 0.2, 0.3)) == []
    assert list(diff_values(("f",), None, {})) == [FieldChange(("f",), None, {})]


# -- the whole plan: every comparator on one draft --------------------------------------------

def zitadel_account() -> Resource:
    return account(zitadel={"project_id": "p1", "role_prefix": "acme_"})


def test_build_plan_runs_every_comparator_into_one_plan() -> None:
    user = Resource("copilot_user", "acme", ("ann@acme.com",), {"display_name": "Ann", "identity_user_id": None, "status": "active"})
    grant = Resource("model_grant", "acme", ("copilot", "gpt", "account", ""), {"access": "allow"})
    actual = State.of([zitadel_account(), org(), grant])
    plan = build_plan(PlanSources(State.of([*actual, user]), actual, CONTEXT, environ={}))
    assert summary(plan) == [("create", "copilot_user", "acme", ("ann@acme.com",))]
    assert plan.fingerprints == fingerprints(actual)
    assert [(a.subject, a.what, a.name, a.gains) for a in plan.access_impact] == [("user:ann@acme.com", "model", "gpt", True)]
    assert plan.zitadel.note and "Zitadel is not configured" in plan.zitadel.note
    assert plan.zitadel.changes == () and plan.zitadel.fingerprints == {}


def test_build_plan_says_when_zitadel_was_skipped() -> None:
    plan = build_plan(PlanSources(State.of([zitadel_account()]), State(), CONTEXT, environ={}, skip_zitadel=True))
    assert plan.zitadel.note and "--skip-zitadel" in plan.zitadel.note


def test_an_account_without_a_zitadel_project_has_no_zitadel_section() -> None:
    plan = build_plan(PlanSources(State.of([account()]), State(), CONTEXT, environ={}))
    assert plan.zitadel.note is None and plan.zitadel.changes == ()


def test_comparators_fill_one_draft_in_their_order() -> None:
    seen: list[str] = []

    def first(sources: PlanSources, draft: PlanDraft) -> None:
        seen.append("first")
        draft.fingerprints = {"acme": "f"}

    def second(sources: PlanSources, draft: PlanDraft) -> None:
        seen.append("second")
        assert draft.fingerprints == {"acme": "f"}  # the same draft
        draft.changes = compare(sources.desired, sources.actual, sources.context).changes

    plan = assemble(PlanSources(State.of([org()]), State(), CONTEXT), (first, second))
    assert seen == ["first", "second"]
    assert plan.fingerprints == {"acme": "f"} and summary(plan) == [("create", "copilot_org", "acme", ("eng",))]

