"""Benchmark: apply a ~100,000-resource tenant into an empty PostgreSQL database, change 1% of
it, and time `plan` next to its floor — parsing the same YAML plus SELECTing the same rows with
nothing else — measured in the same run.

Run on demand: `python tests/bench/bench_plan.py [--users N --teams N --grants N --runs N]`.
`--resources N` scales the default tenant's shape (16,000 users, 1,600 teams, 64,000 grants:
100,999 resources) to about N resources; `--json PATH` writes the figures to PATH (for
tests/bench/run_all.py). It creates and drops its own database on the server named by COCKPIT_TEST_DATABASE_URL
(default postgresql://postgres@127.0.0.1:5432/postgres). Targets: plan within 3x the floor,
apply under 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from generate import generate  # noqa: E402

from cockpit.config.diagnostics import Diagnostics  # noqa: E402
from cockpit.config.source import load_tree  # noqa: E402
from cockpit.memory import paused_gc  # noqa: E402
from cockpit.resources.types import resource_types  # noqa: E402
from cockpit.store.engine import create_engine_for, normalise_database_url  # noqa: E402
from cockpit.store.migrate import upgrade  # noqa: E402
from cockpit.store.secrets import SecretBox  # noqa: E402
from cockpit.store.tables import metadata  # noqa: E402
from cockpit.workspace import ApplyOptions, PlanInputs, apply_plan, make_plan  # noqa: E402

SERVER = os.environ.get("COCKPIT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ENVIRON = {"OPENAI_API_KEY": "sk-bench-not-a-secret"}


DEFAULT_TENANT = (16_000, 1_600, 64_000)
"""Users, teams and grants of the default tenant: 100,999 resources."""
DEFAULT_RESOURCES = 100_999


def tenant_for_resources(resources: int) -> tuple[int, int, int]:
    """Users, teams and grants of a tenant shaped like the default one, with about `resources`
    resources (within a few dozen: the account, models, agents and presets are fixed)."""
    scale = resources / DEFAULT_RESOURCES
    users, teams, grants = (round(n * scale) for n in DEFAULT_TENANT)
    return users, max(1, teams), grants


def create_database() -> str:
    name = f"cockpit_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine_for(normalise_database_url(SERVER), foreign_keys=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def drop_database(name: str) -> None:
    admin = create_engine_for(normalise_database_url(SERVER), foreign_keys=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def change_one_percent(root: Path, resources: int) -> int:
    """Turn allow grants into deny grants until 1% of the resources changed."""
    wanted, changed = max(1, resources // 100), 0
    pattern = re.compile(r"^(  - \{model: [^,]+, scope: [^,}]+)\}$", re.M)
    for path in sorted((root / "access").glob("*.yaml")):
        text = path.read_text()

        def flip(match: re.Match[str]) -> str:
            nonlocal changed
            if changed >= wanted:
                return match.group(0)
            changed += 1
            return match.group(1) + ", access: deny}"

        path.write_text(pattern.sub(flip, text))
        if changed >= wanted:
            break
    return changed


def floor(engine, root: Path) -> float:
    """Parse the same YAML and SELECT the same rows, with nothing else."""
    start = time.perf_counter()
    with paused_gc():
        load_tree(root, Diagnostics())
        with engine.connect() as connection:
            for resource_type in resource_types():
                connection.execute(sa.select(metadata.tables[resource_type.table])).all()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=16_000)
    parser.add_argument("--teams", type=int, default=1_600)
    parser.add_argument("--grants", type=int, default=64_000)
    parser.add_argument("--resources", type=int, default=None,
                        help="Scale the default tenant to about N resources (overrides --users/--teams/--grants).")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="Print where the re-plan spends its time.")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="Write the figures here.")
    args = parser.parse_args()
    if args.resources is not None:
        args.users, args.teams, args.grants = tenant_for_resources(args.resources)
    database = create_database()
    url = normalise_database_url(SERVER.rsplit("/", 1)[0] + "/" + database)
    try:
        upgrade(url)
        engine = create_engine_for(url)
        box = SecretBox("bench-secret-key-0123456789abcdef0123456789")
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            counts = generate(root, users=args.users, teams=args.teams, grants=args.grants)
            inputs = PlanInputs(root, "bench")
            start = time.perf_counter()
            planned = make_plan(engine, box, inputs, ENVIRON)
            plan_seconds = time.perf_counter() - start
            resources = len(planned.plan.changes)
            apply_plan(engine, box, planned.plan, ApplyOptions(actor="bench"), ENVIRON)
            apply_seconds = time.perf_counter() - start
            print(f"tenant: {resources:,} resources; initial plan {plan_seconds:.2f} s; "
                  f"apply into empty PostgreSQL (plan + write) {apply_seconds:.2f} s (target < 60 s)")
            changed = change_one_percent(root, resources)
            plans, floors = [], []
            for _ in range(args.runs):
                floors.append(floor(engine, root))
                start = time.perf_counter()
                replanned = make_plan(engine, box, inputs, ENVIRON).plan
                plans.append(time.perf_counter() - start)
            assert len(replanned.changes) == changed, (len(replanned.changes), changed)
            if args.profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.runcall(make_plan, engine, box, inputs, ENVIRON)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            best_plan, best_floor = min(plans), min(floors)
            print(f"1% changed ({changed:,} resources): plan {best_plan:.2f} s, floor (parse + SELECT) "
                  f"{best_floor:.2f} s, ratio {best_plan / best_floor:.2f}x (target <= 3x)")
            if args.json is not None:
                figures = {
                    "benchmark": "plan",
                    "tenant": counts,
                    "resources": resources,
                    "initial_plan_seconds": plan_seconds,
                    "apply_seconds": apply_seconds,
                    "apply": "initial plan + write into an empty PostgreSQL database",
                    "changed": changed,
                    "runs": args.runs,
                    "plan_seconds": plans,
                    "best_plan_seconds": best_plan,
                    "floor_seconds_runs": floors,
                    "floor_seconds": best_floor,
                    "floor": "parse the same YAML + SELECT the same rows",
                    "ratio": best_plan / best_floor,
                    "target_ratio": 3.0,
                    "target_apply_seconds": 60.0,
                }
                args.json.write_text(json.dumps(figures, indent=2) + "\n")
        engine.dispose()
    finally:
        drop_database(database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
