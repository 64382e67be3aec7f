"""`cockpit import console-cockpit`: a real PostgreSQL database built from the old system's table
catalogue (tests/fakes/console_cockpit_schema.sql) and filled with a tenant that has every quirk
(tests/fakes/console_cockpit_tenant.py) → import → validate → apply (SQLite and PostgreSQL) →
re-plan empty; then, for every user, `cockpit explain --json` against the old system's
algorithms: every difference must be a parity entry of the report. The old database is built
once per module, and each target database is imported into and applied once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner, Result
from psycopg import sql

from cockpit.adopt import old_policy
from cockpit.adopt.console_cockpit import import_console_cockpit
from cockpit.cli import main
from cockpit.store.migrate import upgrade
from fakes import console_cockpit_tenant as tenant
from harness.cockpit import SECRET_KEY

ENVIRONMENT = {
    "AZURE_OPENAI_API_KEY": "env-azure-canary",
    "ANTHROPIC_API_KEY": "env-anthropic-canary",
    "ANTHROPIC_API_KEY_2": "env-anthropic-2-canary",
    "TENANT_AWS_SECRET_ACCESS_KEY": "env-aws-canary",
    "COCKPIT_SECRET_KEY": SECRET_KEY,
}


def _server() -> str:
    url = os.environ.get("COCKPIT_TEST_DATABASE_URL", "").strip()
    if not url:
        pytest.fail("COCKPIT_TEST_DATABASE_URL is not set: the old system's database is PostgreSQL", pytrace=False)
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return re.sub(r"/[^/]*$", f"/{name}", server)


def _drop(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def old_url() -> Iterator[str]:
    """The running console-cockpit's database, built once."""
    server, name = _server(), f"cockpit_old_{secrets.token_hex(5)}"
    url = _database(server, name)
    try:
        tenant.build(url)
        yield url
    finally:
        _drop(server, name)


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


class Adopted:
    """One import applied to one Cockpit database."""

    def __init__(self, out: Path, url: str, imported: Result) -> None:
        self.out, self.url, self.imported = out, url, imported
        self.report = (out / "IMPORT-REPORT.md").read_text(encoding="utf-8")

    def explain(self, account: str, email: str) -> dict:
        result = run("explain", "user", email, "--account", account, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)],
)
def adopted(request: pytest.FixtureRequest, old_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adopted]:
    root = tmp_path_factory.mktemp(f"adopt-{request.param}")
    server, name = _server(), f"cockpit_adopt_{secrets.token_hex(5)}"
    url = f"sqlite:///{root / 'cockpit.db'}" if request.param == "sqlite" else _database(server, name)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**ENVIRONMENT, "DATABASE_URL": url}.items():
            patch.setenv(key, value)
        patch.chdir(root)
        upgrade(url)
        imported = run("import", "console-cockpit", "--database-url", old_url, "--out", str(root / "tenant"))
        assert imported.exit_code == 0, imported.output
        try:
            yield Adopted(root / "tenant", url, imported)
        finally:
            if request.param == "postgresql":
                _drop(server, name)


# --- import → validate → apply → re-plan -------------------------------------------------------


def test_import_validates_applies_and_replans_empty(adopted: Adopted) -> None:
    validate = run("validate", str(adopted.out))
    assert validate.exit_code == 0, validate.output
    assert " 0 errors" in validate.output
    apply = run("apply", str(adopted.out), "--auto-approve", "--skip-zitadel")
    assert apply.exit_code == 0, apply.output
    again = run("plan", str(adopted.out), "--detailed-exitcode", "--skip-zitadel")
    assert again.exit_code == 0, again.output
    assert "No changes" in again.output


# --- parity: explain against the old algorithms ------------------------------------------------


def _cockpit_sets(report: dict, domain: str) -> dict[str, set[str]]:
    sets = {
        "models": {m["model"] for m in report["models"][domain] if m["allowed"]},
        "features": {f["feature"] for f in report["features"][domain] if f["enabled"]},
    }
    if domain == "copilot":
        sets["agents"] = {a["name"] for a in report["agents"]}
        sets["connections"] = {c["name"] for c in report["connections"]}
        sets["marketplace"] = {m["listing"] for m in report["marketplace"]}
        sets["guardrails"] = {g["code"] for g in report["guardrails"] if g["domain"] == "copilot"}
    return sets


def _old_sets(account, domain: str, context) -> dict[str, set[str]]:
    old = account.old
    sets = {
        "models": set(old_policy.allowed_models(old, domain, context)),
        "features": set(old_policy.enabled_features(old, domain, context)),
    }
    if domain == "copilot":
        sets["agents"] = set(old_policy.agents(old, context))
        sets["connections"] = set(old_policy.connections(old, context))
        sets["marketplace"] = set(old_policy.discover(old, context))
        sets["guardrails"] = set(old_policy.guardrails(old, context))
    return sets


def test_explain_agrees_with_the_old_algorithms_except_where_the_report_says_why(adopted: Adopted, old_url: str) -> None:
    applied = run("apply", str(adopted.out), "--auto-approve", "--skip-zitadel")
    assert applied.exit_code == 0, applied.output
    _, imports = import_console_cockpit(old_url)
    parity = re.findall(r"^- `(\S+) user:(\S+)`: (\w+) \((\w+)\): (\S+): ", adopted.report, re.MULTILINE)
    explained = set(parity)
    compared = differences = 0
    for account in imports:
        for domain in ("copilot", "console"):
            for email in sorted(set(account.users[domain].values())):
                cockpit = _cockpit_sets(adopted.explain(account.name, email), domain)
                for context in account.old.contexts(domain, email):
                    for aspect, old in _old_sets(account, domain, context).items():
                        compared += 1
                        for item in old ^ cockpit[aspect]:
                            differences += 1
                            assert (account.name, email, aspect, domain, item) in explained, (
                                f"{email} {aspect} ({domain}) {item}: old {item in old} ({context}), "
                                f"Cockpit {item in cockpit[aspect]}, and the report does not say why"
                            )
    assert compared > 50 and differences > 10
    # The reasons are the computed ones, for the quirks the tenant has.
    assert re.search(r"user:alice@northwind.io`: models \(copilot\): claude-sonnet: old yes with team:research/ml passed, no with team:research/nlp passed; Cockpit no\. Why: membership expansion", adopted.report)
    assert re.search(r"user:carol@northwind.io`: models \(console\): mistral-large: old yes; Cockpit no\. Why: the model-policy ceiling", adopted.report)
    assert re.search(r"user:dave@northwind.io`: features \(copilot\): voice-mode: old yes; Cockpit no\. Why: the feature-pack ceiling", adopted.report)
    assert re.search(r"user:bob@northwind.io`: features \(copilot\): create_agents: old no; Cockpit yes\. Why: the feature-pack default", adopted.report)
    assert re.search(r"user:bob@northwind.io`: models \(copilot\): llama-local: old yes; Cockpit no\. Why: the model is not in the catalog", adopted.report)
    # And no entry claims a difference that explain does not show.
    for account_name, email, aspect, domain, item in explained:
        account = next(a for a in imports if a.name == account_name)
        cockpit = _cockpit_sets(adopted.explain(account_name, email), domain)[aspect]
        olds = [item in _old_sets(account, domain, c)[aspect] for c in account.old.contexts(domain, email)]
        assert any(o != (item in cockpit) for o in olds), f"report claims a difference for {email} {aspect} {item}"


# --- the report and the tree -----------------------------------------------------------------


def _yaml(adopted: Adopted, relative: str) -> list[dict]:
    return list(yaml.safe_load_all((adopted.out / relative).read_text(encoding="utf-8")))


def test_every_quirk_is_carried_over_or_reported(adopted: Adopted) -> None:
    report, nw = adopted.report, "northwind-labs"
    assert adopted.imported.output.startswith("# Import report: console-cockpit database")
    # two agents and two connections with one name: renamed, and said so
    assert "agent 'helpdesk' is named 'helpdesk-2' (another agent of the account already has that name)" in report
    assert "connection 'GitHub' is named 'github-2' (another connection of the account already has that name)" in report
    assert [a["guardrails"] for a in (_yaml(adopted, f"{nw}/agents/helpdesk.yaml") + _yaml(adopted, f"{nw}/agents/helpdesk-2.yaml"))] == [["pii"], ["toxic"]]
    assert "assignment of toxic to an agent that no longer exists" in report
    # overrides, equal splits, nesting and capacity
    plan = _yaml(adopted, f"{nw}/budgets/fy26-q1.yaml")[0]
    assert plan["overrides"] == [{"scope": "team:research/ml", "credits": 90, "reason": "launch, revised"}]
    assert "has 2 overrides for team:research/ml; the newest (90.0 credits) wins" in report
    assert plan["distribute_equally"] == [{"scopes": ["team:research/ml", "team:research/nlp", "team:sales/emea"], "total_credits": 200}]
    assert "team:research/ml 66.67, team:research/nlp 66.67, team:sales/emea 66.66" in report
    assert {a["scope"] for a in plan["allocations"]} == {"org:research", "pool"}
    assert "allocation of user:bob@northwind.io in plan fy26-q1 breaks nesting" in report
    assert "allocation of user:dave@northwind.io in plan fy26-q1 does not fit: the top level needs 1,116.66 credits" in report
    assert "override of 5.0 credits in plan fy26-q1 for user cu-carol: no allocation to replace" in report
    assert _yaml(adopted, f"{nw}/budgets/fy25-q4.yaml")[0]["active"] is False
    # scopes that no longer exist, legacy money fields, team admins
    assert "copilot grant of mistral-large to team ct-deleted, which no longer exists" in report
    assert "grant of agent helpdesk to team ct-deleted, which no longer exists" in report
    assert "max_budget = 5000.0" in report and "spend = 123.4" in report
    assert "admin lead@northwind.io has role copilot_team_admin: in the old system org and team admin roles were account-wide" in report
    # custom patterns, the default org, account metadata, the catalog
    pii = _yaml(adopted, f"{nw}/guardrails/pii.yaml")[0]
    assert [p["name"] for p in pii["patterns"]] == ["ssn", "credit-card"] and pii["assign"] == ["account"]
    assert "pattern 'password-nearby' of preset pii: cannot run on the guardrail engine" in report
    copilot = _yaml(adopted, f"{nw}/directory/copilot.yaml")[0]
    assert [o["name"] for o in copilot["orgs"]] == ["global", "research", "sales"]
    assert "erin@northwind.io" in {u["email"] for u in copilot["users"]}
    account = _yaml(adopted, f"{nw}/account.yaml")[0]
    assert account["feature_pack"] == {"features": ["create_agents", "image_generation"]}
    assert account["model_policy"] == {"console": {"allow": ["gpt-4o", "claude-sonnet"], "deny": []}}
    assert account["zitadel"]["project_id"] == "301234" and account["zitadel"]["role_mappings"]["end_user"] == "nw_end_user"
    assert account["sso"]["settings"]["generic_client_secret"] == "${file:../secrets/northwind-labs-sso-generic_client_secret}"
    models = {m["name"]: m for m in _yaml(adopted, "models.yaml")}
    assert models["gpt-4o"]["pricing"] == {"input_per_million": 2.5, "output_per_million": 10}
    assert models["gpt-4o"]["litellm"]["api_key"] == "${env:AZURE_OPENAI_API_KEY}"
    assert "api_base was os.environ/NW_AZURE_API_BASE, which is not set" in report
    assert models["titan"]["litellm"]["api_key"] == "${env:TENANT_AWS_SECRET_ACCESS_KEY}"
    # two catalog rows of one name: the deployments of one model, named after the upstream model
    assert "litellm" not in models["claude-sonnet"] and models["claude-sonnet"]["deployments"] == [
        {"name": "claude-sonnet-4", "litellm": {"model": "anthropic/claude-sonnet-4", "api_key": "${env:ANTHROPIC_API_KEY}"}},
        {"name": "claude-sonnet-4-2", "litellm": {"model": "anthropic/claude-sonnet-4", "api_key": "${env:ANTHROPIC_API_KEY_2}"}, "rpm": 500},
    ]
    assert models["claude-sonnet"]["pricing"] == {"input_per_million": 3, "output_per_million": 15, "cached_input_per_million": 0.3}
    assert "`LiteLLM_ProxyModelTable model_id=m-claude`: the 2 entries of model claude-sonnet (LiteLLM_ProxyModelTable model_id=m-claude, LiteLLM_ProxyModelTable model_id=m-claude-2) are its deployments claude-sonnet-4 (anthropic/claude-sonnet-4), claude-sonnet-4-2 (anthropic/claude-sonnet-4, rpm 500)" in report
    assert "not carried over yet" not in report
    assert "nw-private" not in models and "'nw-private' belongs to account id acc-nw-0001" in report
    assert "copilot grant of 'llama-local' to team:research/ml: the model is not in the catalog" in report
    assert "`Alchemi_FeatureEntitlementTable id=fe-4`: feature entitlement in domain 'Copilot', which is neither copilot nor console" in report
    # two accounts: each in export's layout under its own directory, the catalog shared
    assert (adopted.out / "globex" / "account.yaml").is_file()


def test_no_fixture_secret_appears_in_yaml_output_or_report(adopted: Adopted) -> None:
    texts = {p: p.read_text(encoding="utf-8") for p in adopted.out.rglob("*") if p.is_file() and "secrets" not in p.parts}
    texts["stdout"] = adopted.imported.output
    for secret in tenant.SECRETS:
        for where_, text in texts.items():
            assert secret not in text, f"a fixture secret is in {where_}"
    secrets_dir = adopted.out / "secrets"
    held = {p.read_text(encoding="utf-8") for p in secrets_dir.iterdir() if p.name != ".gitignore"}
    assert {tenant.SSO_SECRET, tenant.GITHUB_KEY, tenant.MCP_TOKEN, tenant.MISTRAL_KEY} <= held
    assert any(tenant.JIRA_PASSWORD in value for value in held)
    for path in secrets_dir.iterdir():
        if path.name != ".gitignore":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (secrets_dir / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]


# --- what the import must not do -----------------------------------------------------------------


def _old_rows(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as connection:
        tables = [r[0] for r in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {t: sorted(map(str, connection.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(t))).fetchall())) for t in tables}


def test_one_account_in_exports_layout_and_the_old_database_untouched(old_url: str, tmp_path: Path) -> None:
    before = _old_rows(old_url)
    result = run("import", "console-cockpit", "--database-url", old_url, "--account", "globex", "--out", str(tmp_path / "gx"))
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(tmp_path / "gx").as_posix() for p in (tmp_path / "gx").rglob("*.yaml")) == [
        "access/models.yaml", "account.yaml", "directory/copilot.yaml", "models.yaml",
    ]
    assert run("validate", str(tmp_path / "gx")).exit_code == 0
    assert _old_rows(old_url) == before


def test_bad_input_is_one_clear_line_and_nothing_written(old_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    unknown = run("import", "console-cockpit", "--database-url", old_url, "--account", "initech", "--out", str(out))
    assert unknown.exit_code == 1 and "no account named 'initech' in Alchemi_AccountTable; it has: Northwind Labs, globex" in unknown.output
    down = run("import", "console-cockpit", "--database-url", "postgresql://nobody:pw-canary@127.0.0.1:1/none", "--out", str(out))
    assert down.exit_code == 1 and "Database not connected" in down.output and "pw-canary" not in down.output
    empty = re.sub(r"/[^/]*$", "/postgres", old_url)
    foreign = run("import", "console-cockpit", "--database-url", empty, "--out", str(out))
    assert foreign.exit_code == 1 and "does not look like console-cockpit's" in foreign.output
    assert not out.exists()
    out.mkdir()
    (out / "x.yaml").write_text("a: 1\n")
    busy = run("import", "console-cockpit", "--database-url", old_url, "--out", str(out))
    assert busy.exit_code == 1 and "is not an empty directory" in busy.output
    for result in (unknown, down, foreign, busy):
        assert "Traceback" not in result.output
