"""plan and apply through the CLI against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from cockpit.store.engine import create_engine_for
from harness.cockpit import BASE, EXAMPLES, SECRET_KEY, Cockpit


def test_acme_applies_and_replans_empty(cockpit: Cockpit) -> None:
    shutil.rmtree(cockpit.tenant)
    shutil.copytree(EXAMPLES / "acme", cockpit.tenant)
    first = cockpit.apply()
    assert first.exit_code == 0, first.output
    assert "Re-plan: no changes." in first.output
    again = cockpit.plan()
    assert again.exit_code == 0, again.output
    assert "No changes." in again.output
    assert cockpit.scalar("SELECT count(*) FROM copilot_users") >= 30


def test_create_update_delete_every_kind(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    created = cockpit.plan()
    assert created.exit_code == 2, created.output
    assert cockpit.apply().exit_code == 0
    assert cockpit.plan().exit_code == 0

    updated = (
        BASE.replace("credit_factor: 1.5", "credit_factor: 2")
        .replace("pricing: {input_per_million: 2.5", "pricing: {input_per_million: 3")
        .replace("display_name: Alice", "display_name: Alice A.")
        .replace("{user: bob@acme.com}]", "{user: bob@acme.com, role: admin}]")
        .replace("access: deny", "access: allow")
        .replace("config: {size: 1024}", "config: {size: 2048}")
        .replace("type: block", "type: detect")
        .replace("system_prompt: Be kind", "system_prompt: Be brief")
        .replace("auth_mode: api_key}", "auth_mode: api_key, region: eu}")
        .replace("title: Helpdesk", "title: Helpdesk bot")
        .replace("credits: 250, reason: launch", "credits: 200, reason: launch")
    )
    cockpit.write(updated)
    plan = cockpit.plan()
    assert plan.exit_code == 2, plan.output
    for line in (
        "credit_factor: 1.5 → 2",
        "input_per_million: 2.5 → 3",
        'display_name: "Alice" → "Alice A."',
        'role: "member" → "admin"',
        'access: "deny" → "allow"',
        "config.size: 1,024 → 2,048",
        'type: "block" → "detect"',
        'definition.system_prompt: "Be kind" → "Be brief"',
        'config.region: (none) → "eu"',
        'title: "Helpdesk" → "Helpdesk bot"',
        "credits: 250.00 → 200.00",
    ):
        assert line in plan.output, line
    assert cockpit.apply().exit_code == 0
    assert cockpit.plan().exit_code == 0

    cockpit.write(BASE.split("---\napiVersion: cockpit/v1\nkind: ModelAccess")[0])
    removal = cockpit.plan()
    assert removal.exit_code == 3, removal.output
    assert "Deletes (" in removal.output
    refused = cockpit.apply()
    assert refused.exit_code == 1
    assert "--allow-delete" in refused.output
    assert cockpit.scalar("SELECT count(*) FROM agents") == 1
    assert cockpit.apply("--allow-delete").exit_code == 0
    for table in ("agents", "connections", "model_grants", "feature_entitlements", "guardrail_presets", "marketplace_listings", "budget_plans"):
        assert cockpit.scalar(f"SELECT count(*) FROM {table}") == 0, table
    assert cockpit.plan().exit_code == 0

    account, _model, copilot, _console = BASE.split("---\n")[:4]
    cockpit.write("---\n".join([account, copilot.replace(", {email: bob@acme.com}", "").replace(", {user: bob@acme.com}", "")]))
    shrink = cockpit.plan()
    assert shrink.exit_code == 3
    for line in ("- model gpt-4o", "- copilot user acme/bob@acme.com", "- console org acme/ops", "- console team acme/ops/sre", "- copilot team member acme/research/ml/bob@acme.com"):
        assert line in shrink.output, line
    assert cockpit.apply("--allow-delete").exit_code == 0
    assert cockpit.scalar("SELECT count(*) FROM models") == 0
    assert cockpit.scalar("SELECT count(*) FROM console_users") == 0
    assert cockpit.scalar("SELECT count(*) FROM copilot_users") == 1
    assert cockpit.plan().exit_code == 0


def test_saved_plan_and_staleness(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    saved = cockpit.plan("--out", "plan.json")
    assert saved.exit_code == 2
    document = json.loads((cockpit.root / "plan.json").read_text())
    assert document["format_version"] == "1.2"
    assert document["integrity"]["algorithm"] == "HMAC-SHA256"
    assert cockpit.run("apply", "plan.json").exit_code == 0
    assert cockpit.plan().exit_code == 0

    cockpit.write(BASE.replace("display_name: Alice", "display_name: Alicia"))
    assert cockpit.plan("--out", "plan2.json").exit_code == 2
    cockpit.write(BASE.replace("display_name: Alice", "display_name: Ali"))
    assert cockpit.apply().exit_code == 0
    stale = cockpit.run("apply", "plan2.json")
    assert stale.exit_code == 1
    assert "stale" in stale.output and "copilot_user:acme:alice@acme.com" in stale.output


def test_saved_plan_applies_as_reviewed_after_the_config_moved_on(cockpit: Cockpit) -> None:
    """The PR flow: plan --out on the PR, another commit edits the config, apply FILE on merge.
    The saved plan is applied as reviewed, verified against the config it was made from, and
    the apply says the config has moved on and exits 0; the next plan shows the rest."""
    cockpit.write(BASE)
    assert cockpit.apply().exit_code == 0
    cockpit.write(BASE.replace("display_name: Alice", "display_name: Alicia"))
    assert cockpit.plan("--out", "plan.json").exit_code == 2
    document = json.loads((cockpit.root / "plan.json").read_text())
    assert [f["path"] for f in document["config"]["files"]] == ["tenant.yaml"]
    assert "display_name: Alicia" in document["config"]["files"][0]["text"]
    # Another commit lands before the merge: a display name and a new file.
    cockpit.write(BASE.replace("display_name: Alice", "display_name: Ali").replace("{email: bob@acme.com}]", "{email: bob@acme.com, display_name: Bob}]"))
    cockpit.write("", "empty.yaml")

    applied = cockpit.run("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert "Re-plan: no changes. (Checked against the config the plan was made from.)" in applied.output
    assert f"The config at {cockpit.tenant} has moved on since the plan was made (changed: tenant.yaml; added: empty.yaml)" in applied.output
    assert f"The next `cockpit plan {cockpit.tenant}` shows the rest." in applied.output
    assert "bug in cockpit" not in applied.output
    assert cockpit.scalar("SELECT display_name FROM copilot_users WHERE email = 'alice@acme.com'") == "Alicia"
    rest = cockpit.plan()
    assert rest.exit_code == 2
    assert '"Alicia" → "Ali"' in rest.output and '(none) → "Bob"' in rest.output


def test_saved_plan_of_an_unchanged_config_says_nothing_moved(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    assert cockpit.plan("--out", "plan.json").exit_code == 2
    applied = cockpit.run("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert "Re-plan: no changes. (Checked against the config the plan was made from.)" in applied.output
    assert "moved on" not in applied.output


def test_saved_plan_config_is_covered_by_the_mac(cockpit: Cockpit) -> None:
    """Editing the kept config (what the re-plan verifies against) is refused like any edit."""
    cockpit.write(BASE)
    assert cockpit.plan("--out", "plan.json").exit_code == 2
    path = cockpit.root / "plan.json"
    document = json.loads(path.read_text())
    document["config"]["files"][0]["text"] += "# edited\n"
    path.write_text(json.dumps(document))
    refused = cockpit.run("apply", "plan.json")
    assert refused.exit_code == 1
    assert "modified after it was saved (changed: config)" in refused.output
    assert cockpit.scalar("SELECT count(*) FROM accounts") == 0


def test_secrets_show_only_as_sensitive(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    assert cockpit.apply().exit_code == 0
    (cockpit.tenant / "github.key").write_text("ghp-canary-rotated-3333\n")
    plan = cockpit.plan()
    assert plan.exit_code == 2
    assert "secret: (sensitive) → (sensitive, changed)" in plan.output
    for fmt in ("text", "json"):
        output = cockpit.plan("--format", fmt).output
        assert "canary" not in output
    assert cockpit.apply().exit_code == 0
    assert cockpit.scalar("SELECT count(*) FROM audit_events WHERE CAST(after AS TEXT) LIKE '%canary%'") == 0
    assert cockpit.scalar("SELECT count(*) FROM connections WHERE secret_encrypted LIKE '%canary%'") == 0


def test_protected_resources_are_never_deleted(cockpit: Cockpit) -> None:
    cockpit.write(BASE.replace("name: helpdesk\n", "name: helpdesk\nprotect: true\n"))
    assert cockpit.apply().exit_code == 0
    without_agent = BASE.split("---\napiVersion: cockpit/v1\nkind: Agent")[0]
    cockpit.write(without_agent)
    refused = cockpit.apply("--allow-delete")
    assert refused.exit_code == 1
    assert "protected" in refused.output
    assert cockpit.scalar("SELECT count(*) FROM agents") == 1


def test_dropped_account_is_suspended_then_hard_deleted(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    cockpit.write("apiVersion: cockpit/v1\nkind: Account\nname: beta\n", "beta.yaml")
    assert cockpit.apply().exit_code == 0
    (cockpit.tenant / "beta.yaml").unlink()
    plan = cockpit.plan()
    assert 'status: "active" → "suspended"' in plan.output
    assert cockpit.apply().exit_code == 0
    assert cockpit.scalar("SELECT status FROM accounts WHERE name = 'beta'") == "suspended"
    assert cockpit.plan().exit_code == 0
    hard = cockpit.apply("--hard-delete-accounts", "beta", "--allow-delete")
    assert hard.exit_code == 0, hard.output
    assert cockpit.scalar("SELECT count(*) FROM accounts WHERE name = 'beta'") == 0


def test_accounts_of_another_workspace_cannot_be_claimed(cockpit: Cockpit) -> None:
    cockpit.write("apiVersion: cockpit/v1\nkind: Account\nname: beta\n")
    assert cockpit.apply("--workspace", "team-b").exit_code == 0
    claim = cockpit.plan("--workspace", "team-a")
    assert claim.exit_code == 1
    assert "managed by workspace 'team-b'" in claim.output


def test_unresolvable_secret_names_the_variable(cockpit: Cockpit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_OPENAI_KEY")
    cockpit.write(BASE)
    result = cockpit.plan()
    assert result.exit_code == 1
    assert "TEST_OPENAI_KEY is not set" in result.output
    assert "tenant.yaml:12:42: error:" in result.output


def test_concurrent_apply_waits_then_names_the_lock_holder(cockpit: Cockpit) -> None:
    from cockpit.store.locks import lock_accounts
    from cockpit.store.runs import record_run_start

    cockpit.write(BASE)
    assert cockpit.apply().exit_code == 0
    cockpit.write(BASE.replace("display_name: Alice", "display_name: Alicia"))
    engine = create_engine_for(cockpit.url)
    try:
        holder = record_run_start(engine, workspace="default", actor="other-pipeline", commit_sha=None, plan_id="p1", accounts=["acme"])
        with engine.begin() as connection:
            lock_accounts(connection, ["acme"], timeout=5, run_id=holder)
            blocked = cockpit.apply("--lock-timeout", "1")
        assert blocked.exit_code == 1
        assert f"locked by apply run {holder}" in blocked.output
        assert "other-pipeline" in blocked.output
    finally:
        engine.dispose()
    assert cockpit.scalar("SELECT display_name FROM copilot_users WHERE email = 'alice@acme.com'") == "Alice"
    assert cockpit.apply().exit_code == 0
    assert cockpit.scalar("SELECT display_name FROM copilot_users WHERE email = 'alice@acme.com'") == "Alicia"


def test_exit_codes_and_formats(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    assert cockpit.plan().exit_code == 2
    assert cockpit.run("plan", str(cockpit.tenant)).exit_code == 0
    document = json.loads(cockpit.plan("--json").stdout)
    assert document["summary"]["create"] == len(document["changes"]) > 0
    assert {c["action"] for c in document["changes"]} == {"create"}
    markdown = cockpit.plan("--markdown").stdout
    assert len(markdown) < 65_000 and "acme" in markdown
    assert cockpit.apply().exit_code == 0
    no_changes = cockpit.plan("--json")
    assert no_changes.exit_code == 0
    assert json.loads(no_changes.stdout)["changes"] == []


def test_refused_delete_writes_nothing(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    assert cockpit.apply().exit_code == 0
    audit_before = cockpit.scalar("SELECT count(*) FROM audit_events")
    runs_before = cockpit.scalar("SELECT count(*) FROM apply_runs")
    cockpit.write(BASE.replace("  - {model: gpt-4o, scope: user:bob@acme.com, access: deny}\n", "").replace("display_name: Alice", "display_name: Al"))
    refused = cockpit.apply()
    assert refused.exit_code == 1
    assert cockpit.scalar("SELECT count(*) FROM model_grants") == 2
    assert cockpit.scalar("SELECT display_name FROM copilot_users WHERE email = 'alice@acme.com'") == "Alice"
    assert cockpit.scalar("SELECT count(*) FROM audit_events") == audit_before
    assert cockpit.scalar("SELECT count(*) FROM apply_runs") == runs_before


def test_audit_event_per_change(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    result = cockpit.apply("--actor", "ci-bot")
    written = int(result.output.split("Apply complete: ")[1].split(" ")[0])
    assert cockpit.scalar("SELECT count(*) FROM audit_events WHERE actor = 'ci-bot'") == written
    assert cockpit.scalar("SELECT count(DISTINCT domain) FROM audit_events") == 4
    assert cockpit.scalar("SELECT count(*) FROM apply_runs WHERE status = 'succeeded'") == 1


def test_plan_leads_with_access_impact(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    assert cockpit.apply().exit_code == 0
    cockpit.write(BASE.replace("access: deny", "access: allow").replace("credits: 250, reason: launch", "credits: 200, reason: launch"))
    plan = cockpit.plan()
    assert plan.exit_code == 2, plan.output
    lines = plan.output.splitlines()
    assert lines[0] == "Access impact, by the change that causes it:"
    at = lines.index(f"  ~ model grant acme/copilot/gpt-4o/user/bob@acme.com    (tenant/tenant.yaml:{BASE.splitlines().index('  - {model: gpt-4o, scope: user:bob@acme.com, access: deny}') + 1}:5)")
    assert lines[at + 1] == "      1 person gains model gpt-4o (copilot): bob@acme.com"
    at = next(i for i, line in enumerate(lines) if line.startswith("  ~ budget override acme/q1/team/research/ml"))
    assert lines[at + 1] == "      team:research/ml budget q1: 250.00 → 200.00", plan.output
    cockpit.write(BASE.replace("  - {model: gpt-4o, scope: org:research}\n", ""))
    revoke = cockpit.plan()
    assert revoke.exit_code == 3
    lines = revoke.output.splitlines()
    # The grant is no longer in the config: where it was declared is what the apply recorded.
    line = BASE.splitlines().index("  - {model: gpt-4o, scope: org:research}") + 1
    at = lines.index(f"  - model grant acme/copilot/gpt-4o/org/research    (tenant/tenant.yaml:{line}:5)")
    assert lines[at + 1] == "      1 person loses model gpt-4o (copilot): alice@acme.com"


def test_export_command_round_trips(cockpit: Cockpit) -> None:
    cockpit.write(BASE)
    assert cockpit.apply().exit_code == 0
    exported = cockpit.run("export", "--account", "acme", "--out", "exported")
    assert exported.exit_code == 0, exported.output
    assert "put the secret file at" in exported.output
    shutil.copy(cockpit.tenant / "github.key", cockpit.root / "exported" / "connections" / "github.key")
    again = cockpit.run("plan", "exported", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    missing = cockpit.run("export", "--account", "nope", "--out", "other")
    assert missing.exit_code == 1 and "no account named 'nope'" in missing.output


@pytest.mark.postgres
def test_two_apply_processes_serialize(postgres_database_url: str, tmp_path: Path) -> None:
    """Two `cockpit apply` processes on one account: both succeed, one after the other."""
    import os
    import subprocess
    import sys

    from cockpit.store.migrate import upgrade

    upgrade(postgres_database_url)
    environ = {**os.environ, "DATABASE_URL": postgres_database_url, "COCKPIT_SECRET_KEY": SECRET_KEY, "TEST_OPENAI_KEY": "sk-x"}
    tenants = []
    for name in ("a", "b"):
        tenant = tmp_path / name
        tenant.mkdir()
        (tenant / "github.key").write_text("ghp-x\n")
        (tenant / "tenant.yaml").write_text(BASE.replace("display_name: Alice", f"display_name: Alice {name}"))
        tenants.append(tenant)
    command = [sys.executable, "-m", "cockpit.cli"]
    processes = [
        subprocess.Popen([*command, "apply", str(t), "--auto-approve", "--actor", t.name], env=environ, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for t in tenants
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    engine = create_engine_for(postgres_database_url)
    with engine.connect() as connection:
        runs = connection.execute(sa.text("SELECT actor, started_at, finished_at FROM apply_runs WHERE status = 'succeeded' ORDER BY finished_at")).all()
        name = connection.execute(sa.text("SELECT display_name FROM copilot_users WHERE email = 'alice@acme.com'")).scalar()
    engine.dispose()
    assert len(runs) == 2
    assert name == f"Alice {runs[-1].actor}"


def test_audit_events_ship_to_openobserve_and_apply_survives_it_down(cockpit: Cockpit, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakes.openobserve import FakeOpenObserve

    with FakeOpenObserve(user="ingest@acme.com", password="oo-password-canary") as fake:
        for name, value in {"OPENOBSERVE_URL": fake.url, "OPENOBSERVE_USER": "ingest@acme.com", "OPENOBSERVE_PASSWORD": "oo-password-canary", "OPENOBSERVE_ORG": "cockpit", "OPENOBSERVE_STREAM": "audit"}.items():
            monkeypatch.setenv(name, value)
        cockpit.write(BASE)
        applied = cockpit.apply()
        assert applied.exit_code == 0, applied.output
        written = cockpit.scalar("SELECT count(*) FROM audit_events")
        records = fake.records("cockpit", "audit")
        assert len(records) == written > 0
        assert {r["account"] for r in records} == {"acme", None}
        assert "shipped to OpenObserve" in applied.output
        fake.stop()
        cockpit.write(BASE.replace("display_name: Alice", "display_name: Alicia"))
        down = cockpit.apply()
        assert down.exit_code == 0, down.output
        assert "the apply succeeded, but OpenObserve unreachable" in down.output
        assert "oo-password-canary" not in down.output
        assert cockpit.scalar("SELECT display_name FROM copilot_users WHERE email = 'alice@acme.com'") == "Alicia"
