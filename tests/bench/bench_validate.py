"""Benchmark: validate a generated tenant of 20,000 users, 2,000 teams, 100,000 grants.

Run on demand: `python tests/bench/bench_validate.py [--users N --teams N --grants N --runs N]`.
Prints the sizes, the time of each run and the best; target under 10 s on a 2-core machine.

`--resources N` instead sizes the tenant like bench_plan.py's (16 users, 1.6 teams and 64 grants
for every 101 resources), so that validate and plan are timed on the same tenants.
`--json PATH` also times the floor (parsing the same YAML, nothing else), counts the resources
the tenant expands to, and writes the figures to PATH (tests/bench/run_all.py reads them).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan import tenant_for_resources  # noqa: E402
from generate import generate  # noqa: E402

from cockpit.config.diagnostics import Diagnostics  # noqa: E402
from cockpit.config.source import load_tree  # noqa: E402
from cockpit.config.validate import validate_path  # noqa: E402
from cockpit.memory import paused_gc  # noqa: E402
from cockpit.resources.desired import desired_state  # noqa: E402


def parse_floor(root: Path) -> float:
    """Parse the same YAML, with nothing else (validate's part of bench_plan.py's floor)."""
    start = time.perf_counter()
    with paused_gc():
        load_tree(root, Diagnostics())
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--teams", type=int, default=2_000)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--resources", type=int, default=None,
                        help="Size the tenant like bench_plan.py's for about N resources (overrides --users/--teams/--grants).")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="Also time the parse floor and write the figures here.")
    args = parser.parse_args()
    if args.resources is not None:
        args.users, args.teams, args.grants = tenant_for_resources(args.resources)
    with tempfile.TemporaryDirectory() as tmp:
        counts = generate(Path(tmp), users=args.users, teams=args.teams, grants=args.grants)
        files = list(Path(tmp).rglob("*.yaml"))
        size = sum(f.stat().st_size for f in files)
        print(f"tenant: {counts} in {len(files)} files, {size / 2**20:.1f} MiB")
        timings, floors = [], []
        for run in range(args.runs):
            if args.json is not None:
                floors.append(parse_floor(Path(tmp)))
            start = time.perf_counter()
            result = validate_path(Path(tmp))
            timings.append(time.perf_counter() - start)
            errors = sum(1 for d in result.diagnostics if d.severity == "error")
            print(f"run {run + 1}: validate {timings[-1]:.2f} s, {result.documents} documents, {errors} errors")
            if errors:
                print("\n".join(str(d) for d in result.diagnostics[:10]))
                return 1
        if args.json is not None:
            resources = len(desired_state(result.tenant, fingerprint=lambda *a: None))
    print(f"best: {min(timings):.2f} s (target < 10 s)")
    if args.json is not None:
        print(f"floor (parse only): {min(floors):.2f} s; {resources:,} resources")
        figures = {
            "benchmark": "validate",
            "tenant": counts,
            "resources": resources,
            "files": len(files),
            "mib": round(size / 2**20, 2),
            "runs": args.runs,
            "seconds": timings,
            "best_seconds": min(timings),
            "floor_seconds": min(floors),
            "floor": "parse the same YAML",
            "target_seconds": 10.0,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
