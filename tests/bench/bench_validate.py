"""Benchmark: validate a generated tenant of 20,000 users, 2,000 teams, 100,000 grants.

Run on demand: `python tests/bench/bench_validate.py [--users N --teams N --grants N --runs N]`.
Prints the sizes, the time of each run and the best; target under 10 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from generate import generate  # noqa: E402

from cockpit.config.validate import validate_path  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--teams", type=int, default=2_000)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        counts = generate(Path(tmp), users=args.users, teams=args.teams, grants=args.grants)
        files = list(Path(tmp).rglob("*.yaml"))
        size = sum(f.stat().st_size for f in files)
        print(f"tenant: {counts} in {len(files)} files, {size / 2**20:.1f} MiB")
        timings = []
        for run in range(args.runs):
            start = time.perf_counter()
            result = validate_path(Path(tmp))
            timings.append(time.perf_counter() - start)
            errors = sum(1 for d in result.diagnostics if d.severity == "error")
            print(f"run {run + 1}: validate {timings[-1]:.2f} s, {result.documents} documents, {errors} errors")
            if errors:
                print("\n".join(str(d) for d in result.diagnostics[:10]))
                return 1
    print(f"best: {min(timings):.2f} s (target < 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
