"""Crash safety, the CI slice: `cockpit apply` killed with SIGKILL on PostgreSQL.

A few trials of `tests/harness/crash.py` (the benchmark `tests/bench/bench_crash.py` runs 50 and
more): the apply of a changed tenant is killed inside its DB transaction (held at the first
write of a random table, and at the audit events, written last), in its Zitadel phase, and at
a random time. Each time the database must hold the whole old or the whole new state, no lock
may outlive the process, and the next apply must converge: the new state exactly, Zitadel as
an uninterrupted apply leaves it, and an empty plan. While the first killed apply's session
still holds its locks, an apply started meanwhile must give up after --lock-timeout, naming
the killed run, rather than wait forever. And when the change is reverted after a kill that
left Zitadel steps pending, the next apply (of the old tenant) must restore the old state.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.crash import KillPoint, Lab, Shape, database_name, describe

SHAPE = Shape(users=120, orgs=4, teams=3, agents=6, presets=4, connections=3)


@pytest.fixture
def lab(postgres_server_url: str, postgres_database_url: str, tmp_path: Path) -> Iterator[Lab]:
    """The old tenant applied in the fixture's database, which serves as the template."""
    lab = Lab(postgres_server_url, SHAPE, tmp_path, zitadel_delay=0.02, template=database_name(postgres_database_url))
    try:
        lab.prepare()
        yield lab
    finally:
        lab.close()


@pytest.mark.postgres
def test_killed_applies_leave_old_or_new_and_the_next_converges(lab: Lab) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    points = [
        (False, KillPoint("statement", table=rng.choice(lab.written_tables()), probe=True)),
        (True, KillPoint("statement", table="audit_events")),
        (True, KillPoint("zitadel", rng.uniform(0.2, 0.8))),
        (True, KillPoint("uniform", rng.random())),
        (True, KillPoint("run_end", revert=True)),
    ]
    results = [lab.trial(index, zitadel, kill) for index, (zitadel, kill) in enumerate(points)]
    report = f"seed {seed}\n" + "\n".join(describe(r) for r in results)
    print(report)
    assert [r.state for r in results if r.state == "mixed"] == [], report
    assert all(r.converged for r in results), report
    in_transaction, at_audit, in_zitadel, _, reverted = results
    assert in_transaction.phase == at_audit.phase == "transaction", report
    assert in_transaction.lock_probe_seconds > 0, report  # an apply meanwhile gave up, naming it
    assert in_zitadel.phase == "zitadel" and in_zitadel.pending_steps > 0, report
    assert reverted.phase == "zitadel" and reverted.pending_steps > 0, report
    # The killed runs' rows stay 'running' (nothing can record their end), yet blocked nothing.
    assert any(r.stale_running_runs for r in results), report
