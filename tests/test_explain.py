"""`cockpit explain user`: from the applied state (both databases, usage from the ledger) and
from a config before it is applied (file:line of every decision), in text and JSON; errors
exit 1 with one clear message."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cockpit.cli import main
from cockpit.budgets.usage import Used, cycle_window, ledger_scopes
from cockpit.config.scopes import Scope
from cockpit.store.engine import create_engine_for
from cockpit.store.tables import accounts, usage_ledger
from harness.cockpit import BASE, EXAMPLES, Cockpit

ALICE = "alice.nguyen@acme.com"

GLOBEX = """\
apiVersion: cockpit/v1
kind: Account
name: globex
email_domain: globex.com
allocation: {monthly_credits: 777}
---
apiVersion: cockpit/v1
kind: Directory
account: globex
domain: copilot
users: [{email: spy@globex.com}]
orgs: [{name: research, teams: [{name: ml, members: [{user: spy@globex.com}]}]}]
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: globex
name: globex-plan
allocations: [{scope: team:research/ml, credits: 100}]
"""


def run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def chain(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {level["scope"]: level for level in report["budget"]["chain"]}


# -- pure parts --------------------------------------------------------------------------------------

def test_cycle_windows_are_calendar_months_and_quarters_in_utc() -> None:
    at = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))   # 2027-01-01 04:30 UTC
    month = cycle_window("monthly", at)
    assert (month.start, month.end) == (dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    quarter = cycle_window("quarterly", dt.datetime(2026, 11, 15, tzinfo=dt.timezone.utc))
    assert quarter.as_dict() == {"start": "2026-10-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}
    assert cycle_window("quarterly", dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)).as_dict()["start"] == "2026-04-01T00:00:00Z"
    assert cycle_window(None, dt.datetime(2026, 2, 10, tzinfo=dt.timezone.utc)).as_dict()["end"] == "2026-03-01T00:00:00Z"


def test_ledger_attribution() -> None:
    assert ledger_scopes("research", "research/ml", "Alice@X.com") == (Scope("org", "research"), Scope("team", "research/ml"), Scope("user", "alice@x.com"))
    assert ledger_scopes(None, "research/ml", None) == (Scope("org", "research"), Scope("team", "research/ml"))
    assert ledger_scopes(None, None, None) == ()
    used = Used({"org:research": 5.0})
    assert used["org:research"] == 5 and used["team:x/y"] == 0 and "anything" in used


# -- from a config ---------------------------------------------------------------------------------

def test_explain_from_config_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    result = run("explain", "user", "Alice.Nguyen@acme.com", "--account", "acme", "--config", "examples/acme")
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith(f"{ALICE} in account acme, from the config at examples/acme")
    for heading in ("Models (console)", "Models (copilot)", "Agents (copilot)", "Connections (copilot)", "Guardrails", "Features (copilot)", "Budget (copilot): plan fy26-q1, monthly"):
        assert heading in text
    assert "allow claude-sonnet  allowed by model grant allow at team:research/ml (examples/acme/access/models.yaml:" in text
    assert "model_policy.copilot.deny lists azure-gpt-4o, examples/acme/account.yaml:" in text
    assert "override of 4000 credits replaces the allocation of 3333.33 (Q1 fine-tuning experiments)" in text
    assert "team:research/ml  4,000.00 + overflow 300.00; used 0.00; remaining 4,300.00" in text


def test_explain_from_config_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    result = run("explain", "user", ALICE, "--account", "acme", "--config", "examples/acme", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["version"], report["account"], report["user"], report["source"]) == (1, "acme", ALICE, {"kind": "config", "config": "examples/acme"})
    assert report["directory"]["copilot"] == {"member": True, "display_name": "Alice Nguyen", "teams": ["research/ml"], "orgs": ["research"]}
    models = {m["model"]: m for m in report["models"]["copilot"]}
    assert models["claude-sonnet"]["allowed"] and models["claude-sonnet"]["level"] == "team"
    assert models["claude-sonnet"]["sources"][0]["origin"].startswith("examples/acme/access/models.yaml:")
    assert not models["azure-gpt-4o"]["allowed"]
    assert {m["model"]: m["allowed"] for m in report["models"]["console"]}["claude-sonnet"] is False
    assert [a["name"] for a in report["agents"]] == ["code-reviewer", "helpdesk"]
    assert {c["name"] for c in report["connections"]} == {"github", "jira"}
    guardrails = {(g["domain"], g["code"]): g for g in report["guardrails"]}
    assert guardrails[("copilot", "secrets-leak")]["levels"] == ["team:research/ml"]
    assert guardrails[("console", "console-baseline")]["levels"] == ["org:research", "account"]
    features = {f["feature"]: f for f in report["features"]["copilot"]}
    assert features["image_generation"]["enabled"] is False and features["image_generation"]["level"] == "account"
    budget = report["budget"]
    assert (budget["plan"], budget["cycle"], budget["window"]) == ("fy26-q1", "monthly", cycle_window("monthly").as_dict())
    levels = chain(report)
    assert list(levels) == ["team:research/ml", "org:research", "account"]
    assert (levels["team:research/ml"]["credits"], levels["team:research/ml"]["used"], levels["team:research/ml"]["remaining"]) == (4000, 0, 4300)
    assert levels["account"]["remaining"] == 55000


def test_explain_one_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    console = json.loads(run("explain", "user", ALICE, "--account", "acme", "--config", "examples/acme", "--json", "--domain", "console").output)
    assert console["domains"] == ["console"] and list(console["models"]) == ["console"]
    assert "budget" not in console and "agents" not in console
    assert {g["domain"] for g in console["guardrails"]} == {"console"}
    text = run("explain", "user", ALICE, "--account", "acme", "--config", "examples/acme", "--domain", "console").output
    assert "Models (copilot)" not in text and "Budget" not in text


def test_explain_an_admin_in_no_directory(tmp_path: Path) -> None:
    (tmp_path / "tenant.yaml").write_text(BASE)
    result = run("explain", "user", "admin@acme.com", "--account", "acme", "--config", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["admin_role"] == "account_admin"
    assert report["directory"]["copilot"]["member"] is False


def test_explain_errors_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    unknown_user = run("explain", "user", "nobody@acme.com", "--account", "acme", "--config", "examples/acme")
    assert unknown_user.exit_code == 1
    assert "user 'nobody@acme.com' is not in the console or copilot directory of account 'acme', nor one of its admins" in unknown_user.output
    only_console = run("explain", "user", "nobody@acme.com", "--account", "acme", "--config", "examples/acme", "--domain", "console")
    assert "not in the console directory" in only_console.output
    unknown_account = run("explain", "user", ALICE, "--account", "globex", "--config", "examples/acme")
    assert unknown_account.exit_code == 1 and "account 'globex' is not declared in the config at examples/acme" in unknown_account.output
    missing = run("explain", "user", ALICE, "--account", "acme", "--config", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and "no such file or directory" in missing.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tenant.yaml").write_text(BASE.replace("credit_factor: 1.5", "credit_factor: -1"))
    invalid = run("explain", "user", ALICE, "--account", "acme", "--config", str(broken))
    assert invalid.exit_code == 1
    assert "tenant.yaml:" in invalid.output and "is invalid" in invalid.output and "Traceback" not in invalid.output


# -- from the database -----------------------------------------------------------------------------


def apply_acme_and_globex(cockpit: Cockpit, tmp_path: Path) -> None:
    shutil.rmtree(cockpit.tenant)
    shutil.copytree(EXAMPLES / "acme", cockpit.tenant)
    assert cockpit.apply().exit_code == 0
    globex = tmp_path / "globex"
    globex.mkdir()
    (globex / "globex.yaml").write_text(GLOBEX)
    assert cockpit.run("apply", str(globex), "--auto-approve", "--workspace", "other").exit_code == 0


def record_usage(cockpit: Cockpit) -> None:
    """Ledger rows: 125 for alice's team this window, 99,999 last window, 500 elsewhere in
    acme (one on the console ledger), 400 in globex's research/ml."""
    now = cycle_window("monthly").start + dt.timedelta(seconds=1)
    engine = create_engine_for(cockpit.url)
    try:
        with engine.begin() as connection:
            ids = dict(connection.execute(sa.select(accounts.c.name, accounts.c.id)).all())
            blank = dict.fromkeys(("org_key", "team_key", "user_email"))

            def row(account: str, credits: float, created_at: dt.datetime = now, domain: str = "copilot", **fields: Any) -> dict[str, Any]:
                return {"id": uuid.uuid4(), "account_id": ids[account], "domain": domain, "credits": credits, "created_at": created_at, **blank, **fields}

            connection.execute(usage_ledger.insert(), [
                row("acme", 125, org_key="research", team_key="research/ml", user_email=ALICE),
                row("acme", 99999, now - dt.timedelta(days=40), org_key="research", team_key="research/ml", user_email=ALICE),
                row("acme", 450, org_key="engineering"),
                row("acme", 50, domain="console", org_key="research"),
                row("globex", 400, org_key="research", team_key="research/ml"),
            ])
    finally:
        engine.dispose()


def test_explain_from_the_database(cockpit: Cockpit, tmp_path: Path) -> None:
    apply_acme_and_globex(cockpit, tmp_path)
    record_usage(cockpit)
    result = cockpit.run("explain", "user", ALICE, "--account", "acme", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["source"] == {"kind": "database", "workspace": "default"}
    models = {m["model"]: m for m in report["models"]["copilot"]}
    # Where the grant is declared, as the apply recorded it (relative to the tenant repo).
    line = _line_of(EXAMPLES / "acme" / "access" / "models.yaml", "{model: claude-sonnet, scope: team:research/ml}")
    assert models["claude-sonnet"]["allowed"] and models["claude-sonnet"]["sources"][0]["origin"] == f"access/models.yaml:{line}:5"
    assert [a["name"] for a in report["agents"]] == ["code-reviewer", "helpdesk"]
    levels = chain(report)
    ml = levels["team:research/ml"]
    assert (ml["credits"], ml["used"], ml["remaining"]) == (4000, 125, 4175)       # this window only
    assert levels["org:research"]["used"] == 125
    assert levels["account"]["used"] == 125 + 450 + 50                          # console too, not globex

    text = cockpit.run("explain", "user", ALICE, "--account", "acme")
    assert text.exit_code == 0, text.output
    assert "from the database (workspace default)" in text.output
    assert "team:research/ml  4,000.00 + overflow 300.00; used 125.00; remaining 4,175.00" in text.output
    assert f"allowed by model grant allow at team:research/ml (access/models.yaml:{line}:5)" in text.output

    globex = chain(json.loads(cockpit.run("explain", "user", "spy@globex.com", "--account", "globex", "--json").output))
    assert (globex["team:research/ml"]["used"], globex["team:research/ml"]["remaining"]) == (400, -300)

    unknown = cockpit.run("explain", "user", "nobody@acme.com", "--account", "acme")
    assert unknown.exit_code == 1 and "is not in the console or copilot directory of account 'acme'" in unknown.output
    cross = cockpit.run("explain", "user", "spy@globex.com", "--account", "acme")
    assert cross.exit_code == 1
    missing = cockpit.run("explain", "user", ALICE, "--account", "nope")
    assert missing.exit_code == 1 and "account 'nope' is not in the database" in missing.output
    wrong = cockpit.run("explain", "user", ALICE, "--account", "acme", "--workspace", "other")
    assert wrong.exit_code == 1 and "managed by workspace 'default', not 'other'" in wrong.output


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_explain_from_the_database_follows_a_moved_line(cockpit: Cockpit) -> None:
    """A grant whose line moves (a comment added above it) changes nothing, but the apply
    records where it is now: explain and the audit of the next change point at the new line."""
    shutil.rmtree(cockpit.tenant)
    shutil.copytree(EXAMPLES / "acme", cockpit.tenant)
    assert cockpit.apply().exit_code == 0
    models = cockpit.tenant / "access" / "models.yaml"
    models.write_text("# a comment\n# and another\n" + models.read_text())
    unchanged = cockpit.plan()
    assert unchanged.exit_code == 0
    assert "No changes." in unchanged.output and "are declared at a new place in their files; apply records where." in unchanged.output
    moved = cockpit.apply()
    assert moved.exit_code == 0, moved.output
    assert "Nothing to apply; recorded where" in moved.output
    line = _line_of(models, "{model: claude-sonnet, scope: team:research/ml}")
    report = json.loads(cockpit.run("explain", "user", ALICE, "--account", "acme", "--json").output)
    sonnet = next(m for m in report["models"]["copilot"] if m["model"] == "claude-sonnet")
    assert sonnet["sources"][0]["origin"] == f"access/models.yaml:{line}:5"

    models.write_text(models.read_text().replace("  - {model: claude-sonnet, scope: team:research/ml}\n", ""))
    assert cockpit.apply("--allow-delete").exit_code == 0
    origin = cockpit.scalar("SELECT origin FROM audit_events WHERE action = 'delete' AND kind = 'model_grant'")
    assert origin == f"access/models.yaml:{line}:5"
    assert cockpit.scalar("SELECT count(*) FROM resource_origins") == cockpit.scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'create'"
    ) - 1  # every created resource has one, but the deleted grant's, which went with it


def test_explain_a_change_before_it_is_applied(cockpit: Cockpit) -> None:
    shutil.rmtree(cockpit.tenant)
    shutil.copytree(EXAMPLES / "acme", cockpit.tenant)
    assert cockpit.apply().exit_code == 0
    plan = cockpit.tenant / "budgets" / "fy26-q1.yaml"
    plan.write_text(plan.read_text().replace("{scope: team:research/ml, credits: 4000,", "{scope: team:research/ml, credits: 3000,"))
    before = chain(json.loads(cockpit.run("explain", "user", ALICE, "--account", "acme", "--json").output))
    after = chain(json.loads(cockpit.run("explain", "user", ALICE, "--account", "acme", "--json", "--config", str(cockpit.tenant)).output))
    assert before["team:research/ml"]["credits"] == 4000
    assert after["team:research/ml"]["credits"] == 3000
    assert after["team:research/ml"]["sources"][1]["origin"].endswith("fy26-q1.yaml:47:5")
