"""The `cockpit` command line: thin click commands over the library.

User errors print one clear line and exit 1; no command shows a traceback for bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cockpit.config.diagnostics import Diagnostic

FORMATS = click.Choice(["text", "json"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cockpit")
def main() -> None:
    """Cockpit: the AI-gateway control plane, administered as code."""


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=FORMATS, default="text", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Shorthand for --format json.")
def validate(path: Path, output_format: str, as_json: bool) -> None:
    """Check the tenant repo at PATH: schemas, references, budgets, secrets.

    Needs no database and no secret values. Exit 1 when there are errors.
    """
    from cockpit.config.validate import validate_path

    result = validate_path(path)
    if as_json or output_format == "json":
        click.echo(json.dumps([d.as_dict() for d in result.diagnostics], indent=2))
    else:
        _print_diagnostics(result.diagnostics)
        errors = sum(1 for d in result.diagnostics if d.severity == "error")
        warnings = len(result.diagnostics) - errors
        summary = (
            f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in "
            f"{_plural(result.documents, 'document')} ({_plural(result.files, 'file')})"
        )
        click.echo(("valid: " if result.ok else "invalid: ") + summary, err=not result.ok)
    sys.exit(0 if result.ok else 1)


def _print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        click.echo(str(diagnostic))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@main.group()
def schema() -> None:
    """JSON Schemas of the config kinds."""


@schema.command("export")
@click.option(
    "--dir", "directory", type=click.Path(path_type=Path), default=Path("schemas"),
    show_default=True, help="Where to write <Kind>.schema.json.",
)
def schema_export(directory: Path) -> None:
    """Write one JSON Schema per kind, generated from the models."""
    from cockpit.config.schema import export_schemas
    from cockpit.resources import build_registry

    for written in export_schemas(build_registry(), directory):
        click.echo(f"wrote {written}")


@main.group()
def db() -> None:
    """The database: migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to DATABASE_URL (default: ./cockpit.db, SQLite)."""
    from cockpit.store.engine import DatabaseNotConnected, resolve_database_url
    from cockpit.store.migrate import upgrade

    url = resolve_database_url()
    try:
        current = upgrade(url, revision)
    except DatabaseNotConnected as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"database at revision {current}")
