"""What the `plan` and `apply` commands do around the workspace: open the database, turn known
failures into one clear message and exit 1, render, save and load plans, ask for confirmation,
and prove idempotency with a re-plan after every apply."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from cockpit.plan.model import Plan
from cockpit.plan.render_json import render_json
from cockpit.plan.render_text import render_text
from cockpit.workspace import (
    ApplyOptions,
    ApplyRefused,
    PlanFailed,
    PlanInputs,
    Planned,
    StalePlan,
    apply_plan,
    check_applicable,
    make_plan,
    zitadel_now,
)

if TYPE_CHECKING:
    from cockpit.config.snapshot import ConfigSnapshot
    from cockpit.store.secrets import SecretBox

CI_ACTOR_VARIABLES = ("COCKPIT_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR", "CIRCLE_USERNAME", "BUILD_REQUESTEDFOR")


def fail(message: str) -> NoReturn:
    click.echo(message if message.startswith(("error", "Error")) or ": error:" in message else f"error: {message}", err=True)
    sys.exit(1)


def open_store(wait_for_database: bool = False):
    """(engine, secret box, environment) for the configured database, or exit 1 saying why.

    `wait_for_database` (the server): a database not reachable or not migrated yet is said on
    stderr and not fatal; the server's readiness probe answers 503 until it is. A bad URL or a
    missing secret key still stops it: waiting would not fix those."""
    from cockpit.store.engine import DatabaseNotConnected, connect_check, create_engine_for, effective_environment, require_sqlite_file, resolve_database_url
    from cockpit.store.migrate import SchemaNotCurrent, require_current
    from cockpit.store.secrets import SecretBox, SecretKeyError

    environ = effective_environment()
    url = resolve_database_url()
    try:
        engine = None
        try:
            require_sqlite_file(url)  # a command run before `db upgrade` leaves no empty file
            engine = create_engine_for(url)
            connect_check(engine)
            require_current(engine)
        except (DatabaseNotConnected, SchemaNotCurrent) as exc:
            if not wait_for_database:
                raise
            click.echo(f"warning: {exc}; serving anyway, /health/readiness answers 503 until it is fixed", err=True)
        engine = engine or create_engine_for(url)
        box = SecretBox.from_environment(url, environ)
    except (DatabaseNotConnected, SecretKeyError, SchemaNotCurrent) as exc:
        fail(str(exc))
    return engine, box, environ


def plan_or_exit(path: Path, workspace: str, hard_delete: frozenset[str], skip_zitadel: bool = False) -> Planned:
    engine, box, environ = open_store()
    try:
        return make_plan(engine, box, PlanInputs(path, workspace, hard_delete, skip_zitadel), environ)
    except PlanFailed as exc:
        for message in exc.messages:
            click.echo(message, err=True)
        fail(f"no plan: {len(exc.messages)} error(s)")


def render(plan: Plan, output_format: str, saved_to: Path | None = None) -> str:
    if output_format == "json":
        return json.dumps(render_json(plan), indent=2, sort_keys=False, default=str) + "\n"
    if output_format == "markdown":
        from cockpit.plan.render_markdown import render_markdown

        return render_markdown(plan, full_plan=str(saved_to) if saved_to else None)
    return render_text(plan, colour=sys.stdout.isatty())


def save_plan(plan: Plan, out: Path) -> None:
    """Write the plan with its MAC (`cockpit.plan.saved`), so `apply FILE` can refuse an
    edited copy."""
    from dataclasses import replace

    from cockpit.plan.saved import write_saved_plan

    if plan.config is not None and plan.config_path:
        plan = replace(plan, config=replace(plan.config, commit=_git_commit(Path(plan.config_path))))
    write_saved_plan(plan, out, _secret_box())
    click.echo(f"Saved the plan to {out}; apply it with: cockpit apply {out}", err=True)


def _secret_box() -> "SecretBox":
    """The secret box of the configured database, without connecting: `save_plan` is called
    after planning, which already checked the database."""
    from cockpit.store.engine import effective_environment, resolve_database_url
    from cockpit.store.secrets import SecretBox, SecretKeyError

    try:
        return SecretBox.from_environment(resolve_database_url(), effective_environment())
    except SecretKeyError as exc:
        fail(str(exc))


def is_saved_plan(path: Path) -> bool:
    """A saved plan file rather than a config path: `apply` reads it as a plan."""
    return path.is_file() and path.suffix == ".json"


def read_saved_plan(path: Path, box: "SecretBox") -> Plan:
    """The plan saved in `path`, after its MAC verifies with `box`; exits 1 naming what failed
    (missing MAC, another key, the sections edited), before anything is written."""
    from cockpit.plan.saved import SavedPlanError, read_saved_plan as read

    try:
        return read(path, box)
    except SavedPlanError as exc:
        fail(str(exc))


def apply_or_exit(
    target: Path,
    *,
    workspace: str,
    allow_delete: bool,
    auto_approve: bool,
    lock_timeout: float,
    actor: str | None,
    hard_delete: frozenset[str],
    output_format: str,
    skip_zitadel: bool = False,
) -> None:
    from cockpit.apply.executor import ApplyError
    from cockpit.store.locks import LockTimeout

    engine, box, environ = open_store()
    # A saved plan verifies before anything runs, the journal of an earlier apply included.
    saved = read_saved_plan(target, box) if is_saved_plan(target) else None
    _finish_journal(engine, environ, skip_zitadel)
    snapshot = None
    if saved is not None:
        plan = saved
        config_path = Path(plan.config_path) if plan.config_path else None
        snapshot = plan.config
    else:
        plan = plan_or_exit(target, workspace, hard_delete, skip_zitadel).plan
        config_path = target
        click.echo(render(plan, output_format), nl=False)
    options = ApplyOptions(
        allow_delete=allow_delete,
        actor=actor or default_actor(),
        commit_sha=(snapshot.commit if snapshot is not None else _git_commit(config_path) if config_path else None),
        lock_timeout=lock_timeout,
    )
    if not plan.has_changes and plan.origins:
        _record_origins_only(engine, box, plan, options, environ)
        return
    if not _ready(plan, options):
        return
    if saved is None and not auto_approve:
        _confirm(plan)
    # A saved plan with Zitadel in it is checked against what Zitadel holds at apply time.
    probe = zitadel_now(config_path, environ, snapshot) if saved is not None and plan.zitadel.fingerprints and config_path is not None else None
    for attempt in range(1, 4):
        try:
            outcome = apply_plan(engine, box, plan, options, environ, progress=_progress(), zitadel_now=probe)
            break
        except StalePlan as exc:
            # Another apply committed between our plan and our lock. An approved `apply PATH`
            # means "make it match the config": plan again and go on. A saved or confirmed
            # plan must not silently become another plan.
            if saved is not None or not auto_approve or attempt == 3:
                fail(str(exc))
            click.echo("The database changed while this apply waited; planning again.", err=True)
            plan = plan_or_exit(target, workspace, hard_delete, skip_zitadel).plan
            click.echo(render(plan, output_format), nl=False)
            if not _ready(plan, options):
                return
        except (ApplyRefused, ApplyError, LockTimeout) as exc:
            fail(str(exc))
    click.echo(f"Apply complete: {outcome.written} change(s) written (run by {options.actor}).", err=True)
    if outcome.shipping:
        click.echo(outcome.shipping, err=True)
    if outcome.zitadel.done:
        click.echo(f"Zitadel: {outcome.zitadel.done} step(s) done.", err=True)
    if outcome.zitadel.failed:
        for error in outcome.zitadel.errors:
            click.echo(f"  {error}", err=True)
        fail(f"the database is applied, but {outcome.zitadel.failed} Zitadel step(s) failed; they stay in the journal and the next `cockpit apply` runs them first")
    if config_path is not None:
        _replan(engine, box, config_path, plan.workspace, environ, skip_zitadel, snapshot)


def _record_origins_only(engine, box, plan: Plan, options: ApplyOptions, environ) -> None:
    """Nothing changes, but resources moved within their files: record where they are
    declared now, so explain and the read API point at the right lines."""
    from cockpit.apply.executor import ApplyError
    from cockpit.store.locks import LockTimeout

    try:
        apply_plan(engine, box, plan, options, environ)
    except (ApplyRefused, ApplyError, LockTimeout, StalePlan) as exc:
        fail(str(exc))
    click.echo(f"Nothing to apply; recorded where {len(plan.origins)} resource(s) are declared now.", err=True)


def _ready(plan: Plan, options: ApplyOptions) -> bool:
    """False when there is nothing to apply; exits 1 when the plan may not be applied."""
    if not plan.has_changes:
        click.echo("Nothing to apply.", err=True)
        return False
    try:
        check_applicable(plan, options)
    except ApplyRefused as exc:
        fail(str(exc))
    return True


def _finish_journal(engine, environ, skip_zitadel: bool = False) -> None:
    """Zitadel steps left by an earlier, failed or killed apply run before anything else;
    with `--skip-zitadel` they wait, so database changes can go in while Zitadel is down."""
    from cockpit.apply.journal import pending_steps, run_journal
    from cockpit.zitadel import ZitadelError, ZitadelSettings

    waiting = pending_steps(engine)
    if not waiting:
        return
    if skip_zitadel:
        click.echo(f"{waiting} Zitadel step(s) left by an earlier apply stay pending (--skip-zitadel); the next apply without it runs them.", err=True)
        return
    click.echo(f"Finishing {waiting} Zitadel step(s) left by an earlier apply.", err=True)
    try:
        settings = ZitadelSettings.from_environment(environ)
    except ZitadelError as exc:
        fail(str(exc))
    outcome = run_journal(engine, settings)
    if outcome.failed:
        for error in outcome.errors:
            click.echo(f"  {error}", err=True)
        fail(f"{outcome.failed} Zitadel step(s) of an earlier apply still fail; fix Zitadel and run `cockpit apply` again")
    click.echo(f"Zitadel: {outcome.done} earlier step(s) done.", err=True)


def _replan(engine, box, config_path: Path, workspace: str, environ, skip_zitadel: bool = False, snapshot: ConfigSnapshot | None = None) -> None:
    """After every apply, plan again: anything left is a bug, said loudly. Zitadel's searches
    may lag its writes for a moment (eventual consistency), so its part gets a few retries.

    A saved plan is verified against the config it was made from (its `snapshot`), not against
    what the directory holds now: the config may have moved on between the review and the
    merge, and what was applied is what was reviewed. Said plainly when it has moved on."""
    import time

    for pause in (0.5, 1, 2, 4, 0):
        try:
            again = make_plan(engine, box, PlanInputs(config_path, workspace, skip_zitadel=skip_zitadel, snapshot=snapshot), environ).plan
        except PlanFailed as exc:
            fail("re-plan after apply failed: " + "; ".join(exc.messages[:3]))
        if again.changes or not again.zitadel.changes or not pause:
            break
        time.sleep(pause)
    if again.has_changes or again.origins:
        click.echo(render_text(again), err=True)
        left = f"{len(again.changes)} change(s)" + (f" and {len(again.origins)} unrecorded origin(s)" if again.origins else "")
        fail(f"apply finished but the re-plan still shows {left}; this is a bug in cockpit — please report it with the plan above")
    if snapshot is None:
        click.echo("Re-plan: no changes.", err=True)
        return
    click.echo("Re-plan: no changes. (Checked against the config the plan was made from.)", err=True)
    moved = _moved_on(config_path, snapshot)
    if moved:
        click.echo(
            f"The config at {config_path} has moved on since the plan was made ({'; '.join(moved)}); "
            f"this apply wrote the plan as it was reviewed. The next `cockpit plan {config_path}` shows the rest.",
            err=True,
        )


def _moved_on(config_path: Path, snapshot: ConfigSnapshot) -> list[str]:
    """How the config on disk differs from the saved plan's snapshot of it, for people."""
    from cockpit.config.source import find_files, read_text

    if not config_path.exists():
        return [f"{config_path} no longer exists"]
    texts = {path: read_text(path) or "" for path in find_files(config_path)}
    return snapshot.moved_on(texts)


def _confirm(plan: Plan) -> None:
    if not sys.stdin.isatty():
        fail("refusing to apply without confirmation: stdin is not a terminal; review the plan and pass --auto-approve, or apply a saved plan file")
    answer = click.prompt(f"Apply {len(plan.changes)} change(s)? Only 'yes' is accepted", default="", show_default=False)
    if answer.strip() != "yes":
        fail("apply cancelled")


def _progress():
    """Progress on stderr: a live counter on a terminal; in CI logs, a line per tenth of a large
    apply (small ones finish before anyone would look)."""
    if sys.stderr.isatty():
        def live(done: int, total: int) -> None:
            click.echo(f"\r  applied {done}/{total}", err=True, nl=done == total)
        return live
    shown = [0]

    def logged(done: int, total: int) -> None:
        if total >= 1000 and done * 10 // total > shown[0]:
            shown[0] = done * 10 // total
            click.echo(f"  applied {done}/{total} changes", err=True)
    return logged


def default_actor() -> str:
    for variable in CI_ACTOR_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _git_commit(path: Path) -> str | None:
    directory = path if path.is_dir() else path.parent
    try:
        result = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
