"""The shipped examples stay valid: the acme tenant repo and the large-tenant generator."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter

import pytest

from cockpit.config.types import SECRET_REF_PATTERN
from cockpit.config.validate import ValidationResult, validate_path
from cockpit.config.registry import build_registry
from harness.cockpit import EXAMPLES

ACME = EXAMPLES / "acme"


@pytest.fixture(scope="module")
def acme() -> ValidationResult:
    return validate_path(ACME)


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("examples_generate", EXAMPLES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_acme_validates_without_errors_or_warnings(acme: ValidationResult) -> None:
    assert [str(d) for d in acme.diagnostics] == []
    assert acme.ok


def test_acme_uses_every_kind(acme: ValidationResult) -> None:
    assert set(acme.tenant.by_kind) == set(build_registry().kinds())


def test_acme_covers_both_domains(acme: ValidationResult) -> None:
    for kind in ("Directory", "ModelAccess", "Features"):
        assert {d.model.domain for d in acme.tenant.of(kind)} == {"copilot", "console"}
    for domain in ("copilot", "console"):
        assert len(acme.tenant.directory("acme", domain).users) >= 30
    assert {d.model.type for d in acme.tenant.of("Connection")} == {"openapi", "mcp", "composio"}
    assert [d.model.active for d in acme.tenant.of("BudgetPlan")].count(True) == 1


def test_acme_secrets_are_file_references_to_fake_values(acme: ValidationResult) -> None:
    """Every secret field is a ${file:…} reference to a file shipped beside the tenant."""
    references = []
    for declared in acme.tenant.of("Model"):
        model = declared.model
        for litellm in [model.litellm] if model.litellm else [d.litellm for d in model.deployments]:
            references.append((declared, litellm.api_key))
    for declared in acme.tenant.of("Connection"):
        references.extend((declared, value) for value in declared.model.secret.values())
    for declared in acme.tenant.of("Account"):
        settings = declared.model.sso.settings
        references.extend((declared, v) for k, v in settings.items() if "secret" in k.lower())
    assert len(references) >= 8
    for declared, value in references:
        assert re.fullmatch(SECRET_REF_PATTERN, value) and value.startswith("${file:"), value
        target = (declared.source.path.parent / value[len("${file:") : -1]).resolve()
        assert target.is_relative_to(ACME / "secrets"), value
        assert "fake" in target.read_text(encoding="utf-8"), target


def test_generator_writes_a_clean_tenant_with_the_requested_counts(generator, tmp_path) -> None:
    counts = generator.generate(tmp_path, users=200, teams=20, grants=1000)
    assert counts["users"] == 200 and counts["teams"] == 20 and counts["grants"] == 1000

    result = validate_path(tmp_path)
    assert [str(d) for d in result.diagnostics] == []
    directory = result.tenant.directory("bench", "copilot")
    assert len(directory.users) == 200
    assert len(directory.teams) == 20
    assert len(directory.orgs) - 1 == counts["orgs"]  # minus the built-in `global`
    assert all(len(teams) == 1 for teams in directory.user_teams.values())
    assert len(directory.user_teams) == 200

    grants = [g for d in result.tenant.of("ModelAccess") for g in d.model.grants]
    assert len(grants) == 1000
    assert len({(g.model, g.scope) for g in grants}) == 1000
    levels = Counter(g.scope.partition(":")[0] for g in grants)
    assert levels["user"] and levels["team"] and levels["org"]
    assert len(result.tenant.of("BudgetPlan")) == 1


def test_generator_splits_big_lists_into_several_documents(generator, tmp_path) -> None:
    counts = generator.generate(tmp_path, users=12_000, teams=300, grants=12_000, orgs=7)
    assert counts["orgs"] == 7
    assert len(list((tmp_path / "access").glob("*.yaml"))) == 3
    assert len(list((tmp_path / "directory").glob("users-*.yaml"))) == 3
    result = validate_path(tmp_path)
    assert [str(d) for d in result.diagnostics] == []
    assert len(result.tenant.directory("bench", "copilot").users) == 12_000


def test_generator_command_line(generator, tmp_path, capsys) -> None:
    assert generator.main([str(tmp_path), "--users", "30", "--teams", "3", "--grants", "50"]) == 0
    assert "30 users" in capsys.readouterr().err
    assert validate_path(tmp_path).ok
