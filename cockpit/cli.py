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
PLAN_FORMATS = click.Choice(["text", "json", "markdown"])


class _Commands(click.Group):
    """Lists each command with its whole one-line description (click cuts it at the terminal's
    width, mid-sentence); long ones wrap instead. Sub-groups are of this class too."""

    group_class = type

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
    from cockpit.config.registry import build_registry

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
        from cockpit import runner

        runner.fail(str(exc))
    click.echo(f"database at revision {current}")


def _format_option(func):
    func = click.option("--markdown", "as_markdown", is_flag=True, help="Shorthand for --format markdown.")(func)
    func = click.option("--json", "as_json", is_flag=True, help="Shorthand for --format json.")(func)
    return click.option("--format", "output_format", type=PLAN_FORMATS, default="text", show_default=True)(func)


def _chosen_format(output_format: str, as_json: bool, as_markdown: bool) -> str:
    return "json" if as_json else "markdown" if as_markdown else output_format


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--workspace", default="default", show_default=True, help="The workspace that owns the accounts.")
@_format_option
@click.option("--out", "out", type=click.Path(path_type=Path), help="Save the plan (JSON) for `cockpit apply FILE`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 no changes, 2 changes, 3 deletes or revocations, 1 error.")
@click.option("--hard-delete-accounts", "hard_delete", multiple=True, metavar="NAME", help="Delete this account for real instead of suspending it (name it exactly).")
@click.option("--skip-zitadel", is_flag=True, help="Plan the database only; leave Zitadel out.")
def plan(path: Path, workspace: str, output_format: str, as_json: bool, as_markdown: bool, out: Path | None, detailed_exitcode: bool, hard_delete: tuple[str, ...], skip_zitadel: bool) -> None:
    """Show what `apply` would change in the database and Zitadel to match the config at PATH."""
    from cockpit import runner

    output_format = _chosen_format(output_format, as_json, as_markdown)
    planned = runner.plan_or_exit(path, workspace, frozenset(hard_delete), skip_zitadel)
    if out is not None:
        runner.save_plan(planned.plan, out)
    click.echo(runner.render(planned.plan, output_format, out), nl=False)
    sys.exit(planned.plan.exit_code if detailed_exitcode else 0)


@main.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--workspace", default="default", show_default=True)
@click.option("--allow-delete", is_flag=True, help="Allow a plan that deletes resources or revokes access.")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--lock-timeout", default=30.0, show_default=True, type=float, help="Seconds to wait for another apply's lock.")
@click.option("--actor", default=None, help="Who applies, for the audit log (default: the CI's user, else the OS user).")
@click.option("--hard-delete-accounts", "hard_delete", multiple=True, metavar="NAME")
@click.option("--skip-zitadel", is_flag=True, help="Apply the database only; leave Zitadel out.")
@_format_option
def apply(target: Path, workspace: str, allow_delete: bool, auto_approve: bool, lock_timeout: float, actor: str | None, hard_delete: tuple[str, ...], skip_zitadel: bool, output_format: str, as_json: bool, as_markdown: bool) -> None:
    """Make the database match the config at TARGET, or apply a saved plan file."""
    from cockpit import runner

    runner.apply_or_exit(
        target,
        workspace=workspace,
        allow_delete=allow_delete,
        auto_approve=auto_approve,
        lock_timeout=lock_timeout,
        actor=actor,
        hard_delete=frozenset(hard_delete),
        output_format=_chosen_format(output_format, as_json, as_markdown),
        skip_zitadel=skip_zitadel,
    )


@main.command("export")
@click.option("--account", required=True, help="The account to export.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Directory to write the config to.")
@click.option("--workspace", default="default", show_default=True)
@click.option("--overwrite", is_flag=True, help="Write into a directory that already holds YAML files.")
@click.option("--secrets", "secrets_dir", type=click.Path(path_type=Path), default=None, help="Also write the secret files the ${file:} references need, under DIR as the tree's root (0600, listed in DIR/.gitignore); give the --out directory to plan the export as it is.")
def export(account: str, out: Path, workspace: str, overwrite: bool, secrets_dir: Path | None) -> None:
    """Write an account's current state as config that validates and plans to no changes.

    The tree names one account (and the workspace's model catalog): plan it in a workspace that
    manages only this account, or add it to the tenant repo that holds the others.
    """
    from cockpit import runner
    from cockpit.export import ExportError, export_to_directory, file_references

    engine, box, _environ = runner.open_store()
    try:
        written = export_to_directory(engine, workspace, account, out, overwrite=overwrite)
    except ExportError as exc:
        runner.fail(str(exc))
    click.echo(f"Wrote {len(written)} file(s) to {out}.", err=True)
    files = {p.relative_to(out).as_posix(): p.read_text(encoding="utf-8") for p in written}
    references = file_references(files)
    if secrets_dir is not None and references:
        from cockpit.export.secret_files import file_secret_values, write_secret_files

        secret_files, problems = write_secret_files(file_secret_values(engine, box, workspace, account), references, secrets_dir)
        click.echo(f"Wrote {len(secret_files)} secret file(s) under {secrets_dir} (mode 0600, listed in {secrets_dir / '.gitignore'}).", err=True)
        for problem in problems:
            click.echo(f"note: {problem}", err=True)
        return
    for exported, reference, needed in references:
        click.echo(f"note: {exported} refers to {reference}; put the secret file at {out / needed} (or export with --secrets {out})", err=True)



@main.group("import")
def import_() -> None:
    """Adopt Cockpit: a tenant repo, and a report of what changed, from the system in use today."""


@import_.command("console-cockpit")
@click.option("--database-url", required=True, help="The console-cockpit PostgreSQL database (read in one READ ONLY transaction).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="A new or empty directory for the tenant repo.")
@click.option("--account", "accounts", multiple=True, help="Import only this account (by its account_name; repeatable). Default: all.")
def import_console_cockpit(database_url: str, out: Path, accounts: tuple[str, ...]) -> None:
    """Write the accounts of a running console-cockpit as a tenant repo, with IMPORT-REPORT.md."""
    from cockpit.adopt import run_console_cockpit

    _run_import(lambda: run_console_cockpit(database_url, out, accounts), out)


@import_.command("litellm")
@click.option("--config", "config", required=True, type=click.Path(path_type=Path), help="LiteLLM's proxy config.yaml (its model_list).")
@click.option("--database-url", default=None, help="LiteLLM's PostgreSQL database: organizations, teams, users and budgets (read only).")
@click.option("--account", required=True, help="The Cockpit account to create (a config name).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="A new or empty directory for the tenant repo.")
def import_litellm(config: Path, database_url: str | None, account: str, out: Path) -> None:
    """Write LiteLLM's models (and, with --database-url, its directory and budgets) as a tenant repo."""
    from cockpit.adopt import run_litellm

    _run_import(lambda: run_litellm(config, database_url, account, out), out)


def _run_import(run, out: Path) -> None:
    from cockpit import runner
    from cockpit.adopt import ImportFailure

    try:
        report, written = run()
    except ImportFailure as exc:
        runner.fail(str(exc))
    click.echo(report.render(), nl=False)
    click.echo(f"Wrote {len(written)} file(s) to {out}; the report is {out / 'IMPORT-REPORT.md'}.", err=True)


@main.group()
def zitadel() -> None:
    """The Zitadel identity provider."""


@zitadel.command("status")
@click.option("--account", "account", default=None, help="Only this account (default: every account with a zitadel.project_id).")
@click.option("--workspace", default="default", show_default=True)
def zitadel_status(account: str | None, workspace: str) -> None:
    """Reachability, authentication, the project and its role count; exit 1 if something is wrong."""
    from cockpit import runner
    from cockpit.zitadel.desired import project_target
    from cockpit.store.reader import read_actual
    from cockpit.zitadel import ZitadelError, ZitadelSettings

    engine, _box, environ = runner.open_store()
    try:
        settings = ZitadelSettings.from_environment(environ)
    except ZitadelError as exc:
        runner.fail(str(exc))
    if settings is None:
        runner.fail("Zitadel is not configured: set ZITADEL_ISSUER_URL and ZITADEL_MGMT_API_TOKEN (or ZITADEL_CLIENT_ID and ZITADEL_CLIENT_SECRET)")
    with engine.connect() as connection:
        state = read_actual(connection, workspace).state
    names = [account] if account else sorted(state.accounts())
    targets = [(name, project_target(state, name)) for name in names]
    if account and (account not in state.accounts()):
        runner.fail(f"no account named '{account}' in workspace '{workspace}'")
    healthy = True
    for name, target in targets:
        if target is None:
            if account:
                runner.fail(f"account '{name}' has no zitadel.project_id")
            continue
        with settings.client(account_issuer=target.issuer, org_id=target.organization_id) as client:
            report = client.check(target.project_id)
        healthy = healthy and report.ok
        verdict = "ok" if report.ok else "FAILED"
        click.echo(
            f"{name}: {verdict} — {report.base_url}: reachable={'yes' if report.reachable else 'no'}, "
            f"authenticated={'yes' if report.authenticated else 'no'}, project {report.project_id} "
            f"{'found' if report.project_found else 'not found'}"
            + (f" ({report.project_name}), {report.role_count} role(s)" if report.project_found else "")
            + (f"; {report.error}" if report.error else "")
        )
    sys.exit(0 if healthy else 1)


@main.group()
def explain() -> None:
    """Why someone gets what they get: models, agents, connections, guardrails, features, budget."""


@explain.command("user")
@click.argument("email")
@click.option("--account", required=True, help="The account the user belongs to.")
@click.option("--domain", type=click.Choice(["console", "copilot"]), default=None, help="Only this domain (default: both).")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON (version 1, documented in cockpit.explain).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="Explain this config (a tenant repo) instead of the applied state: see a change before it is applied.")
@click.option("--workspace", default=None, help="Check that the account belongs to this workspace (default: whichever manages it).")
def explain_user(email: str, account: str, domain: str | None, as_json: bool, config_path: Path | None, workspace: str | None) -> None:
    """What EMAIL gets in an account, each answer with the grant, level and file:line that decided it.

    Reads the database (the applied state, with credits used in the current cycle window), or
    the config at --config (nothing used yet). Exit 1 for an unknown account or user.
    """
    from cockpit.explain import ExplainError, from_config, from_database, render_report

    domains = (domain,) if domain else ("console", "copilot")
    try:
        if config_path is not None:
            report = from_config(config_path, account, email, domains)
        else:
            report = from_database(_read_engine(), account, email, domains, workspace)
    except ExplainError as exc:
        from cockpit import runner

        runner.fail(str(exc))
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render_report(report), nl=False)


def _read_engine():
    """The database for commands that only read configuration: no secret key needed or made."""
    from cockpit import runner
    from cockpit.store.engine import DatabaseNotConnected, connect_check, create_engine_for, require_sqlite_file, resolve_database_url
    from cockpit.store.migrate import require_current

    try:
        require_sqlite_file(resolve_database_url())
        engine = create_engine_for(resolve_database_url())
        connect_check(engine)
        require_current(engine)
    except DatabaseNotConnected as exc:
        runner.fail(str(exc))
    except Exception as exc:  # SchemaNotCurrent carries its own advice
        if type(exc).__name__ == "SchemaNotCurrent":
            runner.fail(str(exc))
        raise
    return engine


@main.group()
def keys() -> None:
    """Virtual keys for the read API and the proxy: issued per user, stored only as a hash."""


@keys.command("create")
@click.option("--account", required=True, help="The account the key belongs to.")
@click.option("--user", "user", required=True, metavar="EMAIL", help="An account admin, or a user of the domain's directory.")
@click.option("--domain", type=click.Choice(["console", "copilot"]), default=None, help="The domain the key serves (default: both).")
@click.option("--role", default=None, help="A role the config gives the user (default: the admin role for account admins, else end_user).")
@click.option("--agent", default=None, metavar="NAME", help="An agent of the account the key acts for (copilot).")
def keys_create(account: str, user: str, domain: str | None, role: str | None, agent: str | None) -> None:
    """Issue a key: printed once, alone, on stdout; only its SHA-256 hash is stored."""
    from cockpit import runner
    from cockpit.keys import KeyRefused, create_key

    engine, _box, _environ = runner.open_store()
    try:
        issued = create_key(engine, account, user, domain=domain, role=role, agent=agent)
    except KeyRefused as exc:
        runner.fail(str(exc))
    record = issued.record
    click.echo(issued.key)
    click.echo(
        f"Issued key {record.prefix}… (id {record.id}) for {record.user_email} in account '{account}', "
        f"domain {record.domain or 'console and copilot'}, role {record.role or 'default'}"
        + (f", agent {record.agent_name}" if record.agent_name else "")
        + ". It is shown only this once: store it now.",
        err=True,
    )


@keys.command("list")
@click.option("--account", required=True, help="The account whose keys to list.")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def keys_list(account: str, as_json: bool) -> None:
    """An account's keys (prefix, user, domain, role, created, last used, revoked), never the key."""
    from cockpit import runner
    from cockpit.keys import KeyRefused, list_keys

    engine, _box, _environ = runner.open_store()
    try:
        records = list_keys(engine, account)
    except KeyRefused as exc:
        runner.fail(str(exc))
    rows = [
        {
            "id": str(r.id),
            "prefix": r.prefix,
            "user": r.user_email,
            "domain": r.domain or "both",
            "role": r.role or "default",
            "agent": r.agent_name or "",
            "created": _when(r.created_at),
            "last_used": _when(r.last_used_at),
            "revoked": _when(r.revoked_at),
        }
        for r in records
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"Account '{account}' has no keys.", err=True)
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}
    click.echo("  ".join(c.upper().replace("_", " ").ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


@keys.command("revoke")
@click.argument("key")
@click.option("--account", required=True, help="The account the key belongs to.")
def keys_revoke(key: str, account: str) -> None:
    """Revoke KEY (its id, its prefix as `keys list` shows it, or the key itself)."""
    from cockpit import runner
    from cockpit.keys import KeyRefused, revoke_key

    engine, _box, _environ = runner.open_store()
    try:
        record, revoked_now = revoke_key(engine, account, key)
    except KeyRefused as exc:
        runner.fail(str(exc))
    if revoked_now:
        click.echo(f"Revoked key {record.prefix}… (id {record.id}) of {record.user_email}; servers refuse it within seconds.", err=True)
    else:
        click.echo(f"Key {record.prefix}… (id {record.id}) was already revoked at {_when(record.revoked_at)}.", err=True)


@main.group()
def audit() -> None:
    """The audit trail outside the database."""


@audit.command("ship")
def audit_ship() -> None:
    """Send the audit events OpenObserve has not received yet (those an outage left behind,
    or a budget renewal wrote), oldest first, once each. `cockpit apply` does this too; run it
    from a schedule to catch up without an apply. Exit 1 when some could not be sent."""
    from cockpit import runner
    from cockpit.audit import OpenObserveConfigError, OpenObserveSettings
    from cockpit.workspace.audit_shipping import ship_audit

    engine, _box, environ = runner.open_store()
    try:
        if OpenObserveSettings.from_environment(environ) is None:
            runner.fail("OpenObserve is not configured: set OPENOBSERVE_URL, OPENOBSERVE_USER, OPENOBSERVE_PASSWORD, OPENOBSERVE_ORG and OPENOBSERVE_STREAM")
    except OpenObserveConfigError as exc:
        runner.fail(str(exc))
    said = ship_audit(engine, environ, after=None)
    if said is None:
        click.echo("No audit events wait to be shipped.", err=True)
    elif said.startswith("warning:"):
        runner.fail(said[len("warning: "):])
    else:
        click.echo(said, err=True)


@main.group()
def budgets() -> None:
    """Credit budgets at run time: close a cycle."""


@budgets.command("renew")
@click.option("--account", required=True, help="The account whose cycle to close.")
@click.option("--previous", is_flag=True, help="Close the last full calendar window instead of the current cycle (for a job run just after a month or quarter ends).")
@click.option("--rollover-cap", type=click.FloatRange(min=0), default=None, help="At most this many unallocated credits roll over into the next window's pool (default: all of them).")
@click.option("--actor", default=None, help="Who renews, for the audit trail (default: from CI or the OS user).")
@click.option("--json", "as_json", is_flag=True, help="Print the cycle record as JSON.")
def budgets_renew(account: str, previous: bool, rollover_cap: float | None, actor: str | None, as_json: bool) -> None:
    """Close the account's current budget cycle: write its record (window, used credits,
    overflow charge, rollover into the next pool). Plans and allocations stay the config's."""
    from decimal import Decimal

    from cockpit import runner
    from cockpit.budgets.renew import RenewRefused, renew

    engine, _box, _environ = runner.open_store()
    try:
        record = renew(engine, account, previous=previous, rollover_cap=None if rollover_cap is None else Decimal(str(rollover_cap)), actor=actor or runner.default_actor())
    except RenewRefused as exc:
        runner.fail(str(exc))
    if as_json:
        click.echo(json.dumps(record.as_dict(), indent=2))
        return
    window = record.window.as_dict()
    verb = "Closed" if record.created else "Already closed:"
    click.echo(
        f"{verb} cycle {window['start']} – {window['end']} of {record.account} (plan {record.plan}): "
        f"{record.used:,.2f} credits used of {record.monthly_credits:,.2f}, overflow charge {record.overflow_charge:,.2f}, "
        f"{record.rollover:,.2f} rolled over into the next window's pool."
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=4000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes.")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="Log every request.")
@click.option(
    "--http",
    "http",
    type=click.Choice(["auto", "httptools", "h11"]),
    default="auto",
    show_default=True,
    help="HTTP/1.1 parser (auto: httptools when installed); both refuse request heads over 64 KiB or 100 fields.",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, help="json: one JSON object per line, with the request id.")
def serve(host: str, port: int, workers: int, access_log: bool, http: str, log_format: str) -> None:
    """Serve the read API (OpenAPI at /openapi.json) and the OpenAI-compatible LLM proxy
    (`/v1/chat/completions`, `/v1/models`) over the applied state. Request bodies are limited
    to COCKPIT_MAX_BODY_BYTES (default 4 MiB).

    A database that is not reachable yet, or not migrated yet, does not stop the server: it
    starts, says so, and answers 503 on /health/readiness until it is (so it can start beside
    the migration job). Probes: /health/liveliness, /health/readiness; metrics: /metrics."""
    import uvicorn

    from cockpit import runner
    from cockpit.observe.logs import log_config
    from cockpit.server.limits import LimitSettingError, max_body_bytes, server_options

    if workers > 1:
        _multiprocess_metrics_dir()
    from cockpit.server.app import create_app

    engine, box, environ = runner.open_store(wait_for_database=True)
    try:
        max_body_bytes(environ)
    except LimitSettingError as exc:
        runner.fail(str(exc))
    options = {"host": host, "port": port, "access_log": access_log, **server_options(http)}
    logging_config = log_config(log_format)
    if logging_config is not None:
        options["log_config"] = logging_config
    if workers == 1:
        uvicorn.run(create_app(engine, environ, box=box), **options)
    else:
        engine.dispose()
        uvicorn.run("cockpit.cli:serve_app", factory=True, workers=workers, **options)


def _multiprocess_metrics_dir() -> None:
    """Workers share /metrics through files in a fresh directory (prometheus-client's
    multiprocess mode), named before any of them imports prometheus-client and removed when
    the server stops. A directory the operator names in PROMETHEUS_MULTIPROC_DIR is used as
    is (emptied first: values of an earlier run would be counted again)."""
    import atexit
    import os
    import shutil
    import tempfile

    from cockpit.observe.metrics import MULTIPROC_VARIABLE

    given = os.environ.get(MULTIPROC_VARIABLE)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return
    directory = tempfile.mkdtemp(prefix="cockpit-metrics-")
    os.environ[MULTIPROC_VARIABLE] = directory
    atexit.register(shutil.rmtree, directory, True)


def serve_app():
    """The app for one worker process of `cockpit serve --workers N` (a uvicorn factory)."""
    from cockpit import runner
    from cockpit.server.app import create_app

    engine, box, environ = runner.open_store(wait_for_database=True)
    return create_app(engine, environ, box=box)


if __name__ == "__main__":
    main()
