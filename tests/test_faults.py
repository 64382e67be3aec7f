"""Faults: Zitadel answering 429, 5xx, slowly or not at all, or down; OpenObserve down, failing or
hanging; PostgreSQL restarted between plan and apply, and during an apply.

Each test runs the real CLI (in this process through click's runner, or as the installed
`cockpit` command where a process must be interrupted) and asserts the same four things: a clear
message and no Python traceback (and no token or password in the output), nothing lost, nothing
duplicated, and the next run converges (its re-plan is empty). Zitadel and OpenObserve are the fakes of
`tests/fakes/` on loopback; PostgreSQL is a throwaway cluster this module creates with `initdb`
(as the `postgres` OS user when run as root) on a free port, never the shared test server.

| fault | observed |
|---|---|
| Zitadel always 429 (Retry-After), refused, or never answering (`ZITADEL_TIMEOUT`), from the start | `apply PATH` plans first, so it stops there: exit 1, `error: Zitadel, account 'acme': … (gave up after 5 attempts) [… HTTP 429 …]; fix it, or plan the database alone with --skip-zitadel`; nothing written; once Zitadel is back the next apply converges |
| the plan read Zitadel, then its writes answer 429 (Retry-After) / 503 / 500, hang, or Zitadel goes down at the first write | the database part commits (audit events included); exit 1, `the database is applied, but 10 Zitadel step(s) failed; they stay in the journal and the next `cockpit apply` runs them first`, with `9 more step(s) for … not tried`: the first step that exhausts its retries ends the Zitadel phase, so the time is one step's retries, not every step's; the next apply finishes the journal first: every role and grant once, no new audit event, re-plan empty |
| a saved plan applied while Zitadel is unreachable | exit 1, `cannot check the saved plan against Zitadel: … Nothing was applied`; the same plan applies once Zitadel is back |
| slow Zitadel (every request late) | completes; every role and grant once; re-plan empty |
| OpenObserve down / answering 500 / never answering (`OPENOBSERVE_TIMEOUT`) | apply exits 0 with `warning: the apply succeeded, but OpenObserve …; N audit events were not shipped; they are in the audit_events table`, without the password; the events are in the database, unshipped; the next apply (or `cockpit audit ship`) ships them with its own, each once |
| OpenObserve answering only after the client's timeout | reported as not shipped, yet OpenObserve stores the batch once per attempt (4 copies of each event, same `id`): at-least-once delivery, as `cockpit.audit.openobserve` documents |
| PostgreSQL restarted (`-m fast`, `-m immediate`) between `plan --out` and `apply plan.json` | the saved plan applies (it is not stale: the data did not change); re-plan empty |
| PostgreSQL stopped (`-m immediate`, then started) or a backend killed (crash recovery) inside the apply's inserts | exit 1, `error: Database not connected: …; nothing of this apply was written (its transaction was rolled back); run `cockpit apply` again`; nothing in the database; the same saved plan then applies; re-plan empty |
| PostgreSQL stopped while the Zitadel steps run (after the commit) | exit 1, `Database not connected: …; N Zitadel step(s) are not recorded as done and stay in the journal: the next apply runs them (again, which is safe: steps are idempotent)`; the next apply finishes them: every role and grant once |
| PostgreSQL down when apply starts | exit 1, `Database not connected: the server at 127.0.0.1:PORT refused the connection (is PostgreSQL running there?)` |
| `ZITADEL_TIMEOUT` / `OPENOBSERVE_TIMEOUT` not a number of seconds | plan exits 1 naming the variable / apply succeeds and says the events were not shipped, naming the variable |
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import Result

from cockpit.store.migrate import upgrade
from fakes.openobserve import FakeOpenObserve
from fakes.zitadel import FakeZitadel
from fakes.zitadel.faults import Failure
from fakes.zitadel.routing import Request, Response
from harness.cockpit import BASE, SECRET_KEY, Cockpit

PROJECT = "301234567890123456"
ORG = "301234567890120001"
PAT = "pat-canary-faults-0123456789abcdef"
OO_USER = "ingest@acme.com"
OO_PASSWORD = "oo-password-canary-faults"
SECRETS = (PAT, OO_PASSWORD, "sk-test-canary-openai-1111", "ghp-canary-secret-2222")
PEOPLE = ("admin@acme.com", "alice@acme.com", "bob@acme.com", "carol@acme.com")
ROLES = 6
STEPS = ROLES + len(PEOPLE)
"""What the first apply of TENANT does in Zitadel: six project roles and one grant per person."""

TENANT = BASE.replace(
    "admins: [{email: admin@acme.com}]\n",
    "admins: [{email: admin@acme.com}]\n"
    f"zitadel: {{project_id: '{PROJECT}', organization_id: '{ORG}', role_prefix: acme_}}\n",
    1,
)
JOURNAL_LEFT = f"the database is applied, but {STEPS} Zitadel step(s) failed; they stay in the journal and the next `cockpit apply` runs them first"


def clean(result: Result | subprocess.CompletedProcess) -> str:
    """The command's output, after checking it has no traceback and no secret in it."""
    if isinstance(result, Result):
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"uncaught {result.exception!r}") from result.exception
        output = result.output
    else:
        output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    for secret in SECRETS:
        assert secret not in output, f"a secret was printed: {output}"
    return output


# -- Zitadel ------------------------------------------------------------------------------------


def _is_write(request: Request) -> bool:
    return (
        request.method in ("POST", "PUT", "DELETE")
        and not request.path.endswith("/_search")
        and not request.path.startswith("/oauth/")
    )


class FaultyZitadel(FakeZitadel):
    """The fake Zitadel plus faults that can start after the plan has read it.

    `write_failure` answers every write (a POST, PUT or DELETE that is not a search) with an
    error; `hang("all" | "writes")` accepts requests and never answers them (until `release()`;
    a released request does nothing, as if a gateway dropped it); `down_at_first_write` makes
    the service go down (connections cut, then refused) when the first write arrives.
    """

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.write_failure: Failure | None = None
        self.down_at_first_write = False
        self._hang: str | None = None
        self._released = threading.Event()

    def hang(self, which: str) -> None:
        self._released.clear()
        self._hang = which

    def release(self) -> None:
        self._hang = None
        self._released.set()

    async def _dispatch(self, request: Request) -> Response:
        write = _is_write(request)
        if self._hang == "all" or (self._hang == "writes" and write):
            while not self._released.is_set():
                await asyncio.sleep(0.02)
            return self._failure(request.path, Failure(504))
        if write and self.down_at_first_write:
            self.down_at_first_write = False
            threading.Thread(target=self.stop, daemon=True).start()
            await asyncio.sleep(1)  # the connection is cut before this would answer
            return self._failure(request.path, Failure(503))
        if write and self.write_failure is not None:
            return self._failure(request.path, self.write_failure)
        return await super()._dispatch(request)

    def heal(self) -> None:
        self.release()
        self.write_failure = None
        self.down_at_first_write = False
        self.reset_faults()
        self.start()


@pytest.fixture
def zitadel() -> Iterator[FaultyZitadel]:
    fake = FaultyZitadel(org_id=ORG)
    fake.start()
    try:
        fake.add_project(PROJECT, ORG)
        fake.add_pat(PAT)
        for email in PEOPLE:
            fake.add_user(email, org_id=ORG)
        yield fake
    finally:
        fake.release()
        fake.stop()


@pytest.fixture
def cockpit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cockpit:
    """The CLI on a SQLite database (the journal and the messages are the same on PostgreSQL,
    whose own faults are tested below on a cluster of its own)."""
    url = f"sqlite:///{tmp_path / 'cockpit.db'}"
    upgrade(url)
    return Cockpit(url, tmp_path, monkeypatch)


@pytest.fixture
def with_zitadel(cockpit: Cockpit, zitadel: FaultyZitadel, monkeypatch: pytest.MonkeyPatch) -> Cockpit:
    monkeypatch.setenv("ZITADEL_ISSUER_URL", zitadel.url)
    monkeypatch.setenv("ZITADEL_MGMT_API_TOKEN", PAT)
    cockpit.write(TENANT)
    return cockpit


def assert_zitadel_converged(cockpit: Cockpit, zitadel: FakeZitadel, *, replan: bool = True) -> None:
    """Every role once, one grant per person, the journal done, and (unless the apply's own
    re-plan said so already) a re-plan with nothing."""
    roles = [r["key"] for r in zitadel.roles(PROJECT)]
    assert len(roles) == len(set(roles)) == ROLES, roles
    grants = zitadel.grants(PROJECT)
    assert len(grants) == len({g["userId"] for g in grants}) == len(PEOPLE), grants
    assert cockpit.scalar("SELECT count(*) FROM apply_journal WHERE status <> 'done'") == 0
    if replan:
        again = cockpit.plan()
        assert again.exit_code == 0, again.output
        clean(again)


def _zitadel_fails_from_the_start(zitadel: FaultyZitadel, kind: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Switch the fault on; return what the message must say."""
    if kind == "429":
        zitadel.fail_ratio(1.0, statuses=(429,), retry_after=0.5)
        return "HTTP 429"
    if kind == "refused":
        zitadel.stop()
        return "could not be reached (ConnectError"
    monkeypatch.setenv("ZITADEL_TIMEOUT", "0.1")
    zitadel.hang("all")
    return "did not answer in time"


@pytest.mark.parametrize("kind", ["429", "refused", "hanging"])
def test_zitadel_failing_from_the_start_stops_the_apply_before_the_database(
    with_zitadel: Cockpit, zitadel: FaultyZitadel, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    cockpit = with_zitadel
    says = _zitadel_fails_from_the_start(zitadel, kind, monkeypatch)
    started = time.monotonic()
    failed = cockpit.apply()
    elapsed = time.monotonic() - started
    output = clean(failed)
    assert failed.exit_code == 1, output
    assert "error: Zitadel, account 'acme':" in output and says in output, output
    assert "gave up after 5 attempts" in output and "--skip-zitadel" in output, output
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert cockpit.scalar("SELECT count(*) FROM accounts") == 0  # nothing written
    assert cockpit.scalar("SELECT count(*) FROM apply_journal") == 0

    zitadel.heal()
    monkeypatch.delenv("ZITADEL_TIMEOUT", raising=False)
    recovered = cockpit.apply()
    assert recovered.exit_code == 0, recovered.output
    assert "Re-plan: no changes." in clean(recovered)
    assert_zitadel_converged(cockpit, zitadel, replan=False)


def _zitadel_fails_after_the_plan(zitadel: FaultyZitadel, kind: str, monkeypatch: pytest.MonkeyPatch) -> str:
    if kind == "429":
        zitadel.write_failure = Failure(429, retry_after=0.3)
        return "HTTP 429"
    if kind in ("503", "500"):
        zitadel.write_failure = Failure(int(kind))
        return f"HTTP {kind}"
    if kind == "hanging":
        monkeypatch.setenv("ZITADEL_TIMEOUT", "0.25")  # the plan's reads must still get through
        zitadel.hang("writes")
        return "did not answer in time"
    zitadel.down_at_first_write = True
    return "could not be reached"


@pytest.mark.parametrize("kind", ["429", "503", "500", "hanging", "down"])
def test_zitadel_failing_after_the_plan_leaves_its_steps_to_the_next_apply(
    with_zitadel: Cockpit, zitadel: FaultyZitadel, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    cockpit = with_zitadel
    says = _zitadel_fails_after_the_plan(zitadel, kind, monkeypatch)
    started = time.monotonic()
    failed = cockpit.apply()
    elapsed = time.monotonic() - started
    output = clean(failed)
    assert failed.exit_code == 1, output
    assert JOURNAL_LEFT in output and says in output, output
    assert "more step(s) for" in output and "not tried" in output, output
    # One step's retries (3 journal attempts of up to 5 requests each), not ten steps' worth.
    assert elapsed < 25, f"took {elapsed:.1f} s"
    writes = [r for r in zitadel.requests if r[0] != "GET" and not r[1].endswith("/_search")]
    assert len(writes) <= 15, writes
    # The database part is committed, with its audit events, and the steps wait in the journal.
    assert cockpit.scalar("SELECT display_name FROM copilot_users WHERE email = 'alice@acme.com'") == "Alice"
    audited = cockpit.scalar("SELECT count(*) FROM audit_events")
    assert audited > 0
    assert cockpit.scalar("SELECT count(*) FROM apply_journal WHERE status <> 'done'") == STEPS
    # While Zitadel is still down, --skip-zitadel lets database changes through; the steps wait.
    skipped = cockpit.apply("--skip-zitadel")
    assert skipped.exit_code == 0, clean(skipped)
    assert f"{STEPS} Zitadel step(s) left by an earlier apply stay pending" in clean(skipped)
    assert cockpit.scalar("SELECT count(*) FROM apply_journal WHERE status <> 'done'") == STEPS

    zitadel.heal()
    monkeypatch.delenv("ZITADEL_TIMEOUT", raising=False)
    finished = cockpit.apply()
    output = clean(finished)
    assert finished.exit_code == 0, output
    assert f"Finishing {STEPS} Zitadel step(s) left by an earlier apply." in output
    assert f"Zitadel: {STEPS} earlier step(s) done." in output
    assert cockpit.scalar("SELECT count(*) FROM audit_events") == audited  # nothing twice
    assert_zitadel_converged(cockpit, zitadel)


def test_saved_plan_applied_while_zitadel_is_unreachable_is_refused_cleanly(
    with_zitadel: Cockpit, zitadel: FaultyZitadel
) -> None:
    cockpit = with_zitadel
    saved = cockpit.plan("--out", "plan.json")
    assert saved.exit_code == 2, saved.output
    zitadel.stop()
    refused = cockpit.run("apply", "plan.json")
    output = clean(refused)
    assert refused.exit_code == 1, output
    assert "cannot check the saved plan against Zitadel" in output, output
    assert "Nothing was applied" in output
    assert cockpit.scalar("SELECT count(*) FROM accounts") == 0
    assert cockpit.scalar("SELECT status FROM apply_runs") == "failed"

    zitadel.heal()
    applied = cockpit.run("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert "Re-plan: no changes." in clean(applied)
    assert_zitadel_converged(cockpit, zitadel, replan=False)


def test_slow_zitadel_completes(with_zitadel: Cockpit, zitadel: FaultyZitadel) -> None:
    cockpit = with_zitadel
    zitadel.delay = 0.05
    applied = cockpit.apply()
    output = clean(applied)
    assert applied.exit_code == 0, output
    assert f"Zitadel: {STEPS} step(s) done." in output and "Re-plan: no changes." in output
    assert_zitadel_converged(cockpit, zitadel, replan=False)


def test_timeout_settings_that_are_not_seconds_are_clear_errors(
    with_zitadel: Cockpit, monkeypatch: pytest.MonkeyPatch
) -> None:
    cockpit = with_zitadel
    monkeypatch.setenv("ZITADEL_TIMEOUT", "ten")
    refused = cockpit.plan()
    assert refused.exit_code == 1
    assert "ZITADEL_TIMEOUT must be a number of seconds between 0 and 600, such as 10, got 'ten'" in clean(refused)

    monkeypatch.delenv("ZITADEL_TIMEOUT")
    for name, value in {"OPENOBSERVE_URL": "http://127.0.0.1:9", "OPENOBSERVE_USER": OO_USER, "OPENOBSERVE_PASSWORD": OO_PASSWORD, "OPENOBSERVE_ORG": "o", "OPENOBSERVE_STREAM": "s", "OPENOBSERVE_TIMEOUT": "0"}.items():
        monkeypatch.setenv(name, value)
    applied = cockpit.apply()
    assert applied.exit_code == 0, applied.output
    assert "audit events not shipped: OPENOBSERVE_TIMEOUT must be a number of seconds between 0 and 600" in clean(applied)


# -- OpenObserve --------------------------------------------------------------------------------


class SilentOpenObserve(FakeOpenObserve):
    """The fake OpenObserve plus `hang()`: requests are accepted and never answered, and never
    stored (until `release()`, after which they are dropped)."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._hanging = threading.Event()
        self._released = threading.Event()

    def hang(self) -> None:
        self._released.clear()
        self._hanging.set()

    def release(self) -> None:
        self._hanging.clear()
        self._released.set()

    async def app(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and self._hanging.is_set():
            while not self._released.is_set():
                await asyncio.sleep(0.02)
            return
        await super().app(scope, receive, send)


@pytest.fixture
def openobserve(cockpit: Cockpit, monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentOpenObserve]:
    with SilentOpenObserve(user=OO_USER, password=OO_PASSWORD) as fake:
        settings = {
            "OPENOBSERVE_URL": fake.url,
            "OPENOBSERVE_USER": OO_USER,
            "OPENOBSERVE_PASSWORD": OO_PASSWORD,
            "OPENOBSERVE_ORG": "cockpit",
            "OPENOBSERVE_STREAM": "audit",
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        try:
            yield fake
        finally:
            fake.release()
            fake.delay = 0


@pytest.mark.parametrize(
    "kind, says",
    [
        ("down", "OpenObserve unreachable at {url} (connection refused) (4 attempts)"),
        ("500", "OpenObserve at {url} answered HTTP 500 (Internal Server Error) (4 attempts)"),
        ("hanging", "OpenObserve at {url} did not answer within 0.3 s (read timeout) (4 attempts)"),
        ("late", "OpenObserve at {url} did not answer within 0.3 s (read timeout) (4 attempts)"),
    ],
    ids=["down", "500", "hanging", "late"],
)
def test_openobserve_failing_never_fails_the_apply_and_loses_no_event(
    cockpit: Cockpit, openobserve: SilentOpenObserve, monkeypatch: pytest.MonkeyPatch, kind: str, says: str
) -> None:
    url = openobserve.url
    if kind == "down":
        openobserve.stop()
    elif kind == "500":
        openobserve.fail_next(4, status=500)  # every attempt of the one batch
    else:
        monkeypatch.setenv("OPENOBSERVE_TIMEOUT", "0.3")
        if kind == "hanging":
            openobserve.hang()
        else:
            openobserve.delay = 0.6  # answers, but after the client gave up
    cockpit.write(BASE)
    started = time.monotonic()
    applied = cockpit.apply()
    elapsed = time.monotonic() - started
    output = clean(applied)
    assert applied.exit_code == 0, output
    written = int(re.search(r"Apply complete: (\d+) change\(s\) written", output)[1])
    expected = (
        f"warning: the apply succeeded, but {says.format(url=url)}; "
        f"{written} audit events were not shipped; they are in the audit_events table"
    )
    assert expected in output, output
    assert "Re-plan: no changes." in output
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert cockpit.scalar("SELECT count(*) FROM audit_events") == written  # nothing lost
    if kind == "late":
        # Each timed-out attempt was stored after all: at-least-once delivery, as documented in
        # cockpit.audit.openobserve. OpenObserve holds every event once per attempt, under the
        # same id, which is how a query tells the copies apart.
        deadline = time.monotonic() + 10
        while len(openobserve.records("cockpit", "audit")) < 4 * written and time.monotonic() < deadline:
            time.sleep(0.05)
        records = openobserve.records("cockpit", "audit")
        assert len(records) == 4 * written and len({r["id"] for r in records}) == written
        return
    assert openobserve.records("cockpit", "audit") == []

    # OpenObserve is back: the next apply ships the events the outage left behind with its own,
    # oldest first, each once; the one after ships only its own.
    openobserve.release()
    openobserve.start()
    monkeypatch.delenv("OPENOBSERVE_TIMEOUT", raising=False)
    cockpit.write(BASE.replace("display_name: Alice", "display_name: Alicia"))
    later = cockpit.apply()
    output = clean(later)
    assert later.exit_code == 0, output
    assert f"{written + 1} audit event(s) shipped to OpenObserve ({written} left unshipped by earlier runs)" in output, output
    records = openobserve.records("cockpit", "audit")
    assert len(records) == len({r["id"] for r in records}) == written + 1
    assert records[-1]["key"] == "acme/alice@acme.com"
    line = BASE.splitlines().index("users: [{email: alice@acme.com, display_name: Alice}, {email: bob@acme.com}]") + 1
    assert records[-1]["origin"] == f"tenant.yaml:{line}:9"  # where the config declares her
    assert cockpit.scalar("SELECT count(*) FROM audit_events") == written + 1
    assert cockpit.scalar("SELECT count(*) FROM audit_events WHERE shipped_at IS NULL") == 0
    cockpit.write(BASE)
    again = cockpit.apply()
    assert "1 audit event(s) shipped to OpenObserve" in clean(again)
    assert len(openobserve.records("cockpit", "audit")) == written + 2


# -- PostgreSQL ---------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A throwaway PostgreSQL cluster: initdb'd into a temporary directory, on a free port,
    run as the `postgres` OS user when the tests run as root (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        if self.bin is None:
            pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine: cannot make a throwaway cluster")
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = Path(tempfile.mkdtemp(prefix="cockpit-faults-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.as_postgres, str(self.bin / tool), *args], capture_output=True, text=True, timeout=60)
        if check and result.returncode:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr or result.stdout}")
        return result

    def _options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l", str(self.root / "log"), "-m", mode, "-w", "restart")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("the throwaway cluster did not come back")
            time.sleep(0.05)
        # pg_isready answers before crash recovery ends; a query does not.
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2) as connection:
                    connection.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    try:
        yield made
    finally:
        made.destroy()


def cockpit_command() -> list[str]:
    script = Path(sys.executable).with_name("cockpit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cockpit.cli"]


class Shell:
    """The installed `cockpit` command in a process of its own, as CI runs it."""

    def __init__(self, cockpit: Cockpit) -> None:
        self.root = cockpit.root
        self.env = {**os.environ, "DATABASE_URL": cockpit.url}  # as monkeypatched for `cockpit`

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([*cockpit_command(), *args], cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def on_cluster(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cockpit:
    """The CLI (in this process) on a fresh, migrated database of the throwaway cluster."""
    url = cluster.create_database(f"cockpit_faults_{secrets.token_hex(4)}")
    upgrade(url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-canary-openai-1111")
    return Cockpit(url, tmp_path, monkeypatch)


def run_ok(result: Result, code: int = 0) -> str:
    output = clean(result)
    assert result.exit_code == code, output
    return output


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restarted_between_plan_and_apply(cluster: Cluster, on_cluster: Cockpit, mode: str) -> None:
    cockpit = on_cluster
    cockpit.write(BASE)
    run_ok(cockpit.apply())
    cockpit.write(BASE.replace("display_name: Alice", "display_name: Alicia"))
    run_ok(cockpit.plan("--out", "plan.json"), 2)

    cluster.restart(mode)
    cluster.wait_ready()

    output = run_ok(cockpit.run("apply", "plan.json"))
    assert "Apply complete: 1 change(s) written" in output and "Re-plan: no changes." in output
    assert cockpit.scalar("SELECT display_name FROM copilot_users WHERE email = 'alice@acme.com'") == "Alicia"


@pytest.fixture(scope="module")
def big_tenant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tenant whose apply transaction lasts long enough to be interrupted."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    out = tmp_path_factory.mktemp("big") / "tenant"
    generate(out, users=BIG_USERS, teams=BIG_USERS // 10, grants=BIG_USERS * 2, account="bigco")
    return out


BIG_USERS = 2000


def _apply_backend(url: str, timeout: float = 60) -> int:
    """The pid of the backend running the apply's transaction, once it is inserting rows."""
    deadline = time.monotonic() + timeout
    database = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                " AND application_name LIKE 'cockpit apply %%' AND query ILIKE 'INSERT%%'",
                (database,),
            ).fetchone()
            if row:
                return row[0]
            time.sleep(0.02)
    raise AssertionError("the apply was never seen inserting: too fast to interrupt? raise BIG_USERS")


def _interrupted_apply(cockpit: Cockpit, cluster: Cluster, fault: str) -> None:
    """`cockpit apply plan.json` in a process of its own, hit by `fault` inside its inserts."""
    apply = Shell(cockpit).popen("apply", "plan.json")
    backend = _apply_backend(cockpit.url)
    if fault == "stop-immediate":
        cluster.stop("immediate")
        cluster.start()
    else:
        os.kill(backend, signal.SIGKILL)  # the postmaster resets every connection and recovers
    stdout, stderr = apply.communicate(timeout=120)
    cluster.wait_ready()
    output = clean(subprocess.CompletedProcess(apply.args, apply.returncode, stdout, stderr))
    assert apply.returncode == 1, output
    assert "error: Database not connected:" in stderr, output
    assert "nothing of this apply was written (its transaction was rolled back)" in stderr, output
    assert "Apply complete" not in output
    for table in ("accounts", "copilot_users", "model_grants", "audit_events", "apply_journal"):
        assert cockpit.scalar(f"SELECT count(*) FROM {table}") == 0, table
    assert cockpit.scalar("SELECT count(*) FROM apply_runs WHERE status = 'succeeded'") == 0


@pytest.mark.postgres
def test_postgres_restart_during_apply_is_a_clear_error_and_leaves_nothing_partial(
    cluster: Cluster, on_cluster: Cockpit, big_tenant: Path
) -> None:
    cockpit = on_cluster
    shutil.rmtree(cockpit.tenant)
    shutil.copytree(big_tenant, cockpit.tenant)
    run_ok(cockpit.plan("--out", "plan.json"), 2)

    _interrupted_apply(cockpit, cluster, "stop-immediate")  # pg_ctl stop -m immediate, start
    _interrupted_apply(cockpit, cluster, "kill-backend")  # a crashed backend: crash recovery

    output = run_ok(cockpit.run("apply", "plan.json"))  # the plan is still current
    assert "Re-plan: no changes." in output
    assert cockpit.scalar("SELECT count(*) FROM copilot_users") == BIG_USERS
    assert cockpit.scalar("SELECT count(*) FROM apply_runs WHERE status = 'succeeded'") == 1


@pytest.mark.postgres
def test_postgres_down_during_the_zitadel_phase(
    cluster: Cluster, on_cluster: Cockpit, zitadel: FaultyZitadel, monkeypatch: pytest.MonkeyPatch
) -> None:
    cockpit = on_cluster
    monkeypatch.setenv("ZITADEL_ISSUER_URL", zitadel.url)
    monkeypatch.setenv("ZITADEL_MGMT_API_TOKEN", PAT)
    cockpit.write(TENANT)
    zitadel.delay = 0.2
    apply = Shell(cockpit).popen("apply", str(cockpit.tenant), "--auto-approve")
    deadline = time.monotonic() + 60
    while not any(_is_write(Request(m, p, {}, {}, b"")) for m, p, _ in zitadel.requests):
        assert time.monotonic() < deadline and apply.poll() is None, "the apply never reached Zitadel"
        time.sleep(0.02)
    cluster.stop("immediate")  # while a Zitadel step is in flight; its result cannot be recorded
    try:
        stdout, stderr = apply.communicate(timeout=60)
    finally:
        cluster.start()
        cluster.wait_ready()
    output = clean(subprocess.CompletedProcess(apply.args, apply.returncode, stdout, stderr))
    assert apply.returncode == 1, output
    planned = re.search(r"Creates and updates \((\d+)\)", output)
    assert planned and f"Apply complete: {planned.group(1)} change(s) written" in stderr, output  # every planned change
    assert "Database not connected:" in stderr, output
    left = int(re.search(r"(\d+) Zitadel step\(s\) are not recorded as done and stay in the journal", stderr)[1])
    assert f"the database is applied, but {left} Zitadel step(s) failed" in stderr, output
    assert 1 <= left <= STEPS
    assert cockpit.scalar("SELECT count(*) FROM apply_journal WHERE status <> 'done'") == left

    zitadel.delay = 0
    finished = run_ok(cockpit.apply())
    assert f"Finishing {left} Zitadel step(s) left by an earlier apply." in finished
    assert_zitadel_converged(cockpit, zitadel)


@pytest.mark.postgres
def test_postgres_down_when_apply_starts(cluster: Cluster, on_cluster: Cockpit) -> None:
    cockpit = on_cluster
    cockpit.write(BASE)
    cluster.stop("immediate")
    try:
        output = run_ok(cockpit.apply(), 1)
    finally:
        cluster.start()
        cluster.wait_ready()
    assert f"Database not connected: the server at 127.0.0.1:{cluster.port} refused the connection" in output
    assert "Re-plan: no changes." in run_ok(cockpit.apply())
