"""What every command prints around its work: one `error:` spelling, no database file left
behind by a command run before `db upgrade`, command descriptions whole in `cockpit --help`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cockpit.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "command",
    [
        ("plan", "."),
        ("explain", "user", "alice@acme.com", "--account", "acme"),
        ("keys", "list", "--account", "acme"),
        ("export", "--account", "acme", "--out", "out"),
    ],
    ids=lambda c: c[0],
)
def test_a_command_before_db_upgrade_leaves_no_database_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (tmp_path / "tenant.yaml").write_text("apiVersion: cockpit/v1\nkind: Model\nname: m\nlitellm: {model: openai/m}\n")
    result = run(*command)
    assert result.exit_code == 1
    assert f"error: Database not connected: no database at {tmp_path / 'cockpit.db'}: run `cockpit db upgrade` first" in result.output
    assert not (tmp_path / "cockpit.db").exists()
    upgraded = run("db", "upgrade")
    assert upgraded.exit_code == 0 and (tmp_path / "cockpit.db").exists()


def test_db_upgrade_says_error_like_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = run("db", "upgrade")
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Error:" not in result.output


def test_help_lists_each_command_description_whole() -> None:
    result = run("--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    commands = result.output.split("Commands:")[1]
    assert "..." not in commands
    assert "Make the database match the config at TARGET, or apply a saved plan file." in text
    assert "Write an account's current state as config that validates and plans to no changes." in text
    keys = run("keys", "--help")
    assert "..." not in keys.output.split("Commands:")[1]
