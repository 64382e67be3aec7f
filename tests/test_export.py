"""`cockpit.export`: an account back into a tenant repo; the round trip is the test.

Apply a tenant, export it, validate the export (no errors), plan the export against the same
database: no changes. Run on SQLite and PostgreSQL through `migrated_url`, with the BASE tenant
of harness/cockpit.py, examples/acme and a generated tenant. Pure tests (no database) cover the
cases the example tenants do not: the equal-distribution regrouping, the implicit org `global`,
empty SSO and Zitadel sections, multi-line prompts.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from cockpit.config.validate import validate_path
from cockpit.export import ExportError, export_account, export_to_directory, file_references
from cockpit.export.budgets import EqualShare, regroup, reproduces
from cockpit.export.documents import EXPORTED_TYPES
from cockpit.plan.compare import PlanContext, compare
from cockpit.resources.desired import desired_state
from cockpit.resources.state import State
from cockpit.resources.types import resource_types
from cockpit.store.engine import create_engine_for

from harness.cockpit import BASE, EXAMPLES, Cockpit

ACME = EXAMPLES / "acme"


# --- pure: no database ---------------------------------------------------------------------


def _refs_fingerprint(resource_type, refs, base, origins) -> str:
    """Stands in for the HMAC: the references themselves, so a changed reference is a diff."""
    return json.dumps(refs, sort_keys=True)


def _desired(root: Path) -> State:
    result = validate_path(root)
    errors = [str(d) for d in result.diagnostics if d.severity == "error"]
    assert errors == []
    return desired_state(result.tenant, _refs_fingerprint)


def _write(files: dict[str, str], root: Path) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _round_trip(source: Path, account: str, out: Path) -> tuple[dict[str, str], State, State]:
    before = _desired(source)
    files = export_account(before, account)
    after = _desired(_write(files, out))
    return files, before, after


def _changes(desired: State, actual: State, account: str) -> list[str]:
    plan = compare(desired, actual, PlanContext("default", frozenset({account})))
    return [f"{c.action.value} {c.type} {c.key} {c.field_changes}" for c in plan.changes]


def test_every_resource_type_is_exported() -> None:
    assert EXPORTED_TYPES == {t.name for t in resource_types()}


def test_regroup_keeps_groups_that_reproduce() -> None:
    shares = [EqualShare("team:r/data", 333334, 30000), EqualShare("team:r/ml", 333333, 30000), EqualShare("team:r/nlp", 333333, 30000)]
    assert reproduces(shares)
    [split] = regroup(shares)
    assert split.scopes == ("team:r/data", "team:r/ml", "team:r/nlp")
    assert (split.total_cents, split.cap_cents) == (1_000_000, 30000)


def test_regroup_splits_a_group_that_does_not_reproduce() -> None:
    # Two entries with the same cap: [a, b] 200.01 and [c, d] 100. Merged, 300.01 over four
    # scopes would give 75.01/75/75/75, so the group is split per amount.
    shares = [EqualShare("team:x/a", 10001, None), EqualShare("team:x/b", 10000, None), EqualShare("team:x/c", 5000, None), EqualShare("team:x/d", 5000, None)]
    assert not reproduces(shares)
    splits = regroup(shares)
    assert [(s.scopes, s.total_cents) for s in splits] == [
        (("team:x/a",), 10001), (("team:x/b",), 10000), (("team:x/c", "team:x/d"), 10000)
    ]
    assert all(reproduces([s for s in shares if s.scope in split.scopes]) for split in splits)


def test_regroup_splits_when_the_remainder_went_to_a_later_scope() -> None:
    # The bigger share on the second scope in sorted order cannot come from one entry.
    shares = [EqualShare("user:a@x.com", 3333, 500), EqualShare("user:b@x.com", 3334, 500)]
    assert not reproduces(shares)
    assert sorted(len(s.scopes) for s in regroup(shares)) == [1, 1]


TRICKY = """\
apiVersion: cockpit/v1
kind: Account
name: tricky
protect: true
email_domain: tricky.io
status: suspended
sso: {}
zitadel: {}
allocation: {monthly_credits: 100000.5, credit_factor: 1}
feature_pack: {features: [image_generation], config: {"on": true, "1": yes}}
model_policy: {copilot: {deny: [m2]}}
---
apiVersion: cockpit/v1
kind: Model
name: m1
protect: true
litellm: {model: x/m1, api_key: "${env:M1_KEY}", timeout: 30, extra_body: {a: [1, 2.5, null]}}
pricing: {input_per_million: 0.000001, output_per_million: 0}
---
apiVersion: cockpit/v1
kind: Model
name: m2
description: "yes"
litellm: {model: "x/m2:latest"}
pricing: {input_per_million: 1, output_per_million: 2}
---
apiVersion: cockpit/v1
kind: Directory
account: tricky
domain: copilot
users:
  - {email: U1@tricky.io, display_name: "O'Brien: the first", identity_user_id: "0012"}
  - {email: u2@tricky.io, status: suspended}
  - {email: u3@tricky.io}
orgs:
  - name: global
    teams: [{name: everyone, members: [{user: u1@tricky.io}]}]
  - name: x
    description: "# not a comment"
    admins: [u2@tricky.io]
    teams: [{name: a}, {name: b}, {name: c}, {name: d, description: ""}]
---
apiVersion: cockpit/v1
kind: Directory
account: tricky
domain: console
users: [{email: c1@tricky.io}]
---
apiVersion: cockpit/v1
kind: ModelAccess
account: tricky
domain: console
grants: [{model: m1, scope: account}, {model: m2, scope: user:c1@tricky.io, access: deny}]
---
apiVersion: cockpit/v1
kind: Features
account: tricky
domain: copilot
entitlements: [{feature: image_generation, scope: team:global/everyone, enabled: false, config: {n: [1, {k: v}]}}]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: tricky
code: console-only
name: "Console: only"
domain: console
config: {threshold: 0.5}
patterns: [{name: p, regex: '^\\s*(?:a|b)\\s*$', enabled: false, action: "redact"}]
assign: [account, user:c1@tricky.io]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: tricky
code: basic
name: Basic
---
apiVersion: cockpit/v1
kind: Agent
account: tricky
name: bot
description: |
  Two lines
  of description
definition:
  system_prompt: "Say: 'hi' # not a comment\\n  indented line\\ntrailing spaces   \\n"
  tools: [{type: builtin, name: "null"}]
guardrails: [basic]
grants: [user:u3@tricky.io, org:x, team:x/a]
---
apiVersion: cockpit/v1
kind: Connection
account: tricky
name: api
type: openapi
credential_visibility: self_managed
allow_user_self_manage: true
config: {spec_url: "https://api.tricky.io/openapi.json"}
secret: {token: "${env:API_TOKEN}", other: "${file:keys/api}"}
grants: [{scope: org:x, can_manage: true}, {scope: user:u1@tricky.io}]
---
apiVersion: cockpit/v1
kind: MarketplaceListing
account: tricky
entity: connection:api
title: "API: internal"
published: false
version: "2.0"
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: tricky
name: split
cycle: quarterly
active: false
allow_overflow: true
distribute_equally:
  - {scopes: [team:x/b, team:x/a], total_credits: 200.01}
  - {scopes: [team:x/c, team:x/d], total_credits: 100}
  - {scopes: [user:u2@tricky.io, user:U1@tricky.io, user:u3@tricky.io], total_credits: 100, overflow_cap: 5}
overrides: [{scope: team:x/a, credits: 150}]
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: tricky
name: manual
allocations: [{scope: pool, credits: 0.01, overflow_cap: 0}, {scope: org:x, credits: 300}]
"""


def test_round_trip_of_the_tricky_cases(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tenant.yaml").write_text(TRICKY)
    files, before, after = _round_trip(tmp_path / "src", "tricky", tmp_path / "out")
    assert _changes(after, before, "tricky") == []

    assert "directory/console.yaml" in files and "marketplace.yaml" in files
    copilot = yaml.safe_load(files["directory/copilot.yaml"])
    assert [org["name"] for org in copilot["orgs"]] == ["global", "x"]
    assert "description" not in copilot["orgs"][0]  # declared without one: stays None
    account = yaml.safe_load(files["account.yaml"])
    assert account["sso"] == {}  # an SSO section with nothing but defaults is still a resource
    assert account["zitadel"] == {}  # `zitadel: {}` stored its defaults, so it is written back
    assert account["protect"] is True and account["status"] == "suspended"
    split = yaml.safe_load(files["budgets/split.yaml"])
    assert split["distribute_equally"] == [
        {"scopes": ["team:x/a"], "total_credits": 100.01},
        {"scopes": ["team:x/b"], "total_credits": 100},
        {"scopes": ["team:x/c", "team:x/d"], "total_credits": 100},
        {"scopes": ["user:u1@tricky.io", "user:u2@tricky.io", "user:u3@tricky.io"], "total_credits": 100, "overflow_cap": 5},
    ]
    assert "allocations" not in split
    agent = files["agents/bot.yaml"]
    assert "description: |\n  Two lines\n" in agent
    assert file_references(files) == [("connections/api.yaml", "${file:keys/api}", "connections/keys/api")]
    assert files["connections/api.yaml"].startswith("# ${file:...} references")


def test_implicit_global_org_is_not_exported(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tenant.yaml").write_text(BASE)
    files, before, after = _round_trip(tmp_path / "src", "acme", tmp_path / "out")
    assert _changes(after, before, "acme") == []
    copilot = yaml.safe_load(files["directory/copilot.yaml"])
    assert [org["name"] for org in copilot["orgs"]] == ["research"]


def test_global_with_teams_or_its_own_description_is_exported(tmp_path: Path) -> None:
    tenant = BASE.replace("orgs:\n  - name: research\n", "orgs:\n  - {name: global, description: Everyone}\n  - name: research\n", 1)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tenant.yaml").write_text(tenant)
    files, before, after = _round_trip(tmp_path / "src", "acme", tmp_path / "out")
    assert _changes(after, before, "acme") == []
    copilot = yaml.safe_load(files["directory/copilot.yaml"])
    assert copilot["orgs"][0] == {"name": "global", "description": "Everyone"}


def test_unknown_account_is_an_error() -> None:
    with pytest.raises(ExportError, match="no account named 'nobody'"):
        export_account(State(), "nobody")


# --- against the database: apply, export, validate, plan → no changes ---------------------


def _export(cockpit: Cockpit, account: str, workspace: str = "default") -> Path:
    out = cockpit.root / "exported"
    engine = create_engine_for(cockpit.url)
    try:
        written = export_to_directory(engine, workspace, account, out)
    finally:
        engine.dispose()
    assert written and all(p.is_file() and p.is_relative_to(out) for p in written)
    return out


def _assert_exports_to_no_changes(cockpit: Cockpit, out: Path) -> None:
    result = validate_path(out)
    assert [str(d) for d in result.diagnostics if d.severity == "error"] == []
    plan = cockpit.run("plan", str(out), "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "No changes." in plan.output


def test_base_tenant_round_trip(cockpit: Cockpit, monkeypatch: pytest.MonkeyPatch) -> None:
    # The connection secret as an ${env:} reference: it resolves wherever the export puts it.
    monkeypatch.setenv("TEST_GITHUB_KEY", "ghp-canary-secret-2222")
    cockpit.write(BASE.replace("${file:github.key}", "${env:TEST_GITHUB_KEY}"))
    applied = cockpit.apply()
    assert applied.exit_code == 0, applied.output

    out = _export(cockpit, "acme")
    # The files the exporter lays out for the tenant as configured (no database): the export
    # of the database must be the same files, whatever kinds BASE holds.
    laid_out = sorted(export_account(_desired(cockpit.tenant), "acme"))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml")) == laid_out
    exported = "".join(p.read_text() for p in out.rglob("*.yaml"))
    assert "canary" not in exported
    assert "${env:TEST_GITHUB_KEY}" in exported and "${env:TEST_OPENAI_KEY}" in exported
    _assert_exports_to_no_changes(cockpit, out)


def test_base_tenant_with_a_file_secret_placed_next_to_the_export(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    assert cockpit.apply().exit_code == 0
    out = _export(cockpit, "acme")
    files = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.yaml")}
    # ${file:github.key} was relative to tenant.yaml; in the export it is relative to
    # connections/github.yaml, so the secret file goes where the reference now points.
    assert file_references(files) == [("connections/github.yaml", "${file:github.key}", "connections/github.key")]
    missing = cockpit.run("plan", str(out), "--detailed-exitcode")
    assert missing.exit_code == 1 and "github.key" in missing.output
    shutil.copy(cockpit.tenant / "github.key", out / "connections" / "github.key")
    _assert_exports_to_no_changes(cockpit, out)


def test_acme_example_round_trip(cockpit: Cockpit) -> None:
    shutil.rmtree(cockpit.tenant)
    shutil.copytree(ACME, cockpit.tenant)
    assert cockpit.apply().exit_code == 0

    out = _export(cockpit, "acme")
    files = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.yaml")}
    assert set(files) >= {
        "account.yaml", "models.yaml", "directory/copilot.yaml", "directory/console.yaml",
        "access/models.yaml", "access/features.yaml", "guardrails/pii-strict.yaml",
        "agents/helpdesk.yaml", "connections/github.yaml", "marketplace.yaml", "budgets/fy26-q1.yaml",
    }
    # acme's ${file:} references resolve in the export once the secret files sit where the
    # references point from the exported files (acme's layout is the export's, so the paths match).
    references = file_references(files)
    assert len(references) >= 7 and len(set(references)) == len(references)  # each named once
    for _, _, target in references:
        (out / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ACME / target, out / target)
    _assert_exports_to_no_changes(cockpit, out)
    assert yaml.safe_load(files["budgets/fy26-q1.yaml"])["distribute_equally"][0] == {
        "scopes": ["team:research/data", "team:research/ml", "team:research/nlp"],
        "total_credits": 10000,
        "overflow_cap": 300,
    }


def test_export_with_secrets_plans_as_it_is(cockpit: Cockpit) -> None:
    """`export --secrets OUT`: the round trip needs no secret file put back by hand; each
    secret file is 0600, listed once in the .gitignore, and the CLI names each file once."""
    shutil.rmtree(cockpit.tenant)
    shutil.copytree(ACME, cockpit.tenant)
    assert cockpit.apply().exit_code == 0
    out = cockpit.root / "exported"
    without = cockpit.run("export", "--account", "acme", "--out", str(out))
    assert without.exit_code == 0, without.output
    notes = [line for line in without.output.splitlines() if line.startswith("note:")]
    assert notes and len(notes) == len(set(notes))
    shutil.rmtree(out)

    exported = cockpit.run("export", "--account", "acme", "--out", str(out), "--secrets", str(out))
    assert exported.exit_code == 0, exported.output
    assert "note:" not in exported.output
    files = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.yaml")}
    targets = sorted({target for _, _, target in file_references(files)})
    assert targets
    for target in targets:
        assert (out / target).read_text().strip() == (ACME / target).read_text().strip()
        assert (out / target).stat().st_mode & 0o777 == 0o600
    ignored = (out / ".gitignore").read_text().splitlines()
    assert sorted(line for line in ignored if not line.startswith("#")) == [f"/{t}" for t in targets]
    _assert_exports_to_no_changes(cockpit, out)


def _generator():
    spec = importlib.util.spec_from_file_location("examples_generate", EXAMPLES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tenant_round_trip(cockpit: Cockpit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-bench")
    shutil.rmtree(cockpit.tenant)
    counts = _generator().generate(cockpit.tenant, users=500, teams=50, grants=2000)
    assert (counts["users"], counts["teams"], counts["grants"]) == (500, 50, 2000)
    applied = cockpit.apply()
    assert applied.exit_code == 0, applied.output

    out = _export(cockpit, "bench")
    grants = yaml.safe_load((out / "access" / "models.yaml").read_text())["grants"]
    assert len(grants) == 2000
    _assert_exports_to_no_changes(cockpit, out)


def test_export_refuses_unknown_foreign_accounts_and_a_tree_in_the_way(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    assert cockpit.run("apply", str(cockpit.tenant), "--auto-approve", "--workspace", "team-a").exit_code == 0
    engine = create_engine_for(cockpit.url)
    try:
        with pytest.raises(ExportError, match="no account named 'nobody'"):
            export_to_directory(engine, "team-a", "nobody", cockpit.root / "x")
        with pytest.raises(ExportError, match="managed by workspace 'team-a'"):
            export_to_directory(engine, "default", "acme", cockpit.root / "x")
        with pytest.raises(ExportError, match="already holds YAML files"):
            export_to_directory(engine, "team-a", "acme", cockpit.tenant)
        written = export_to_directory(engine, "team-a", "acme", cockpit.tenant, overwrite=True)
        assert cockpit.tenant / "account.yaml" in written
    finally:
        engine.dispose()
