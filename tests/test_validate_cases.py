"""Every examples/invalid case prints its expected message at the right place and exits 1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cockpit.cli import main
from cockpit.config.registry import build_registry
from harness.cockpit import EXAMPLES

CASES = sorted(p for p in (EXAMPLES / "invalid").iterdir() if p.is_dir())
KIND_LIST = re.compile(r"(unknown kind '[^']*'; use one of: |document has no 'kind'; add one of: )[^;\n]*")
"""The list of kinds in the messages for an unknown or a missing kind."""


def expected(case: Path) -> str:
    """The case's expected output, with any list of kinds taken from the registry, so adding a
    kind does not rewrite a case whose subject is something else."""
    kinds = ", ".join(build_registry().kinds())
    return KIND_LIST.sub(lambda found: found[1] + kinds, (case / "expected.txt").read_text())


def run_validate(directory: Path, *args: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(directory)
    return CliRunner().invoke(main, ["validate", ".", *args])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_case(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_validate(case, monkeypatch=monkeypatch)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1
    assert result.stdout == expected(case)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_case_as_json(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_validate(case, "--format", "json", monkeypatch=monkeypatch)
    assert result.exit_code == 1
    items = json.loads(result.stdout)
    lines = [f"{i['file']}:{i['line']}:{i['column']}: {i['severity']}: {i['message']}" for i in items]
    assert "\n".join(lines) + "\n" == expected(case)


def test_cases_cover_every_rule() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("case", "secret"),
    [("literal-secret", "sk-live-9f8e7d6c5b4a"), ("sso-literal-secret", "s3cr3t-value")],
)
def test_literal_secret_is_never_echoed(case: str, secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = next(c for c in CASES if c.name == case)
    assert secret in "".join(p.read_text() for p in directory.glob("*.yaml"))
    for args in ((), ("--json",)):
        result = run_validate(directory, *args, monkeypatch=monkeypatch)
        assert result.exit_code == 1
        assert secret not in result.output
