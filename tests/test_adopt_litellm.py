"""`cockpit import litellm`: a LiteLLM config and database fixture (tests/fakes/litellm_proxy.py,
its tables as LiteLLM's schema.prisma declares them) → import → validate → apply (SQLite and
PostgreSQL) → re-plan empty; every user's models by `cockpit explain --json` are those LiteLLM
let them call; no fixture secret outside `secrets/`; located errors for a bad config.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner, Result
from psycopg import sql

from cockpit.cli import main
from cockpit.store.migrate import upgrade
from fakes import litellm_proxy as proxy
from harness.cockpit import SECRET_KEY

ENVIRONMENT = {"AZURE_API_KEY_EU": "env-eu-canary", "ANTHROPIC_API_KEY": "env-anthropic-canary", "COCKPIT_SECRET_KEY": SECRET_KEY}
USERS = ("ann@initech.com", "ben@initech.com", "cat@initech.com", "dan@initech.com")


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _server() -> str:
    url = os.environ.get("COCKPIT_TEST_DATABASE_URL", "").strip()
    if not url:
        pytest.fail("COCKPIT_TEST_DATABASE_URL is not set: LiteLLM's database is PostgreSQL", pytrace=False)
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return re.sub(r"/[^/]*$", f"/{name}", server)


def _drop(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def litellm_url() -> Iterator[str]:
    server, name = _server(), f"cockpit_litellm_{secrets.token_hex(5)}"
    url = _database(server, name)
    try:
        proxy.build(url)
        yield url
    finally:
        _drop(server, name)


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)],
)
def adopted(request: pytest.FixtureRequest, litellm_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Result]]:
    root = tmp_path_factory.mktemp(f"litellm-{request.param}")
    server, name = _server(), f"cockpit_adopt_{secrets.token_hex(5)}"
    url = f"sqlite:///{root / 'cockpit.db'}" if request.param == "sqlite" else _database(server, name)
    config = proxy.write_config(root / "config.yaml")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**ENVIRONMENT, "DATABASE_URL": url}.items():
            patch.setenv(key, value)
        patch.chdir(root)
        upgrade(url)
        imported = run("import", "litellm", "--config", str(config), "--database-url", litellm_url, "--account", "initech", "--out", str(root / "tenant"))
        assert imported.exit_code == 0, imported.output
        try:
            yield root / "tenant", imported
        finally:
            if request.param == "postgresql":
                _drop(server, name)


def test_import_validates_applies_and_replans_empty(adopted: tuple[Path, Result]) -> None:
    out, _ = adopted
    assert run("validate", str(out)).exit_code == 0
    apply = run("apply", str(out), "--auto-approve", "--skip-zitadel")
    assert apply.exit_code == 0, apply.output
    again = run("plan", str(out), "--detailed-exitcode", "--skip-zitadel")
    assert again.exit_code == 0 and "No changes" in again.output, again.output


def test_every_user_gets_the_models_litellm_let_them_call_except_where_the_report_says(adopted: tuple[Path, Result]) -> None:
    out, _ = adopted
    report = (out / "IMPORT-REPORT.md").read_text()
    assert run("apply", str(out), "--auto-approve", "--skip-zitadel").exit_code == 0
    catalog = {m["name"] for m in yaml.safe_load_all((out / "models.yaml").read_text())}
    assert catalog == {"gpt-4o", "gpt-4o-mini", "claude-haiku"}
    for user in USERS:
        result = run("explain", "user", user, "--account", "initech", "--domain", "console", "--json")
        assert result.exit_code == 0, result.output
        allowed = {m["model"] for m in json.loads(result.output)["models"]["console"] if m["allowed"]}
        litellm = proxy.allowed_models(user, catalog)
        if allowed != litellm:
            said = re.search(rf"LiteLLM_UserTable user_id={proxy.USER_IDS[user]}`: lists ([\w., -]+), which its team", report)
            assert said and set(said.group(1).split(", ")) == allowed - litellm and litellm <= allowed, user
    assert "user_id=u-cat`: lists claude-haiku, which its team t-ops does not" in report


def test_the_report_says_what_was_not_carried_over(adopted: tuple[Path, Result]) -> None:
    out, imported = adopted
    report = (out / "IMPORT-REPORT.md").read_text()
    assert imported.output.startswith(report)
    assert "`config.yaml:12`: another deployment of gpt-4o: several deployments of one model are not carried over yet" in report
    assert "`config.yaml:2`: model gpt-4o: rpm = 600: rate limits are not carried over yet" in report
    assert "team:engineering/platform: tpm_limit = 50000: rate limits are not carried over yet" in report
    assert "1 virtual key(s) of ann@initech.com (ann-laptop) are not moved" in report
    assert "section general_settings (database_url, master_key, salt_key)" in report
    assert "org:engineering: max_budget 800.0 per 30d is not carried over" in report
    assert "model 'gemini-flash' was added through LiteLLM's UI or API (store_model_in_db)" in report
    account = yaml.safe_load((out / "account.yaml").read_text())
    assert account["allocation"] == {"monthly_credits": 2500} and account["admins"] == [{"email": "ann@initech.com"}]
    models = {m["name"]: m for m in yaml.safe_load_all((out / "models.yaml").read_text())}
    assert models["gpt-4o"]["litellm"] == {"model": "azure/gpt-4o-eu", "api_key": "${env:AZURE_API_KEY_EU}", "api_version": "2024-06-01"}
    assert models["gpt-4o-mini"]["pricing"] == {"input_per_million": 0.15, "output_per_million": 0.6}
    directory = yaml.safe_load((out / "directory" / "console.yaml").read_text())
    assert [(o["name"], [t["name"] for t in o["teams"]]) for o in directory["orgs"]] == [("engineering", ["data-science", "platform"]), ("default", ["ops"])]


def test_no_fixture_secret_appears_in_yaml_output_or_report(adopted: tuple[Path, Result]) -> None:
    out, imported = adopted
    texts = {p: p.read_text() for p in out.rglob("*") if p.is_file() and "secrets" not in p.parts}
    texts["stdout"] = imported.output
    for secret in proxy.SECRETS:
        for where_, text in texts.items():
            assert secret not in text, f"a fixture secret is in {where_}"
    assert (out / "secrets" / "model-gpt-4o-mini-api-key").read_text() == proxy.OPENAI_LITERAL_KEY


def test_config_only_and_bad_configs(tmp_path: Path) -> None:
    config = proxy.write_config(tmp_path / "config.yaml")
    only = run("import", "litellm", "--config", str(config), "--account", "initech", "--out", str(tmp_path / "a"))
    assert only.exit_code == 0, only.output
    assert sorted(p.name for p in (tmp_path / "a").glob("*.yaml")) == ["account.yaml", "models.yaml"]
    for secret in proxy.SECRETS:
        assert secret not in only.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list:\n  - model_name: x\n\tlitellm_params: {}\n")
    located = run("import", "litellm", "--config", str(bad), "--account", "initech", "--out", str(tmp_path / "b"))
    assert located.exit_code == 1 and re.search(r"bad\.yaml:3:1: error: not valid YAML", located.output), located.output
    bad.write_text("general_settings: {}\n")
    missing = run("import", "litellm", "--config", str(bad), "--account", "initech", "--out", str(tmp_path / "b"))
    assert missing.exit_code == 1 and "bad.yaml:1:1: error: a LiteLLM proxy config has a top-level model_list" in missing.output
    name = run("import", "litellm", "--config", str(config), "--account", "Initech Corp", "--out", str(tmp_path / "b"))
    assert name.exit_code == 1 and "is not a config name" in name.output
    assert not (tmp_path / "b").exists()
