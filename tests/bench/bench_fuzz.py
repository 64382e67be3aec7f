"""Config fuzzing at scale: 10,000 broken tenants through `cockpit validate` and `cockpit plan`.

Run on demand: `python tests/bench/bench_fuzz.py [--cases N] [--seed S]`. Uses the strategies and
properties of tests/test_fuzz_config.py against a fresh migrated SQLite database; prints the case
count, the time and every failing input (exit 1 if any). `--json PATH` also writes the figures to
PATH (for tests/bench/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from test_fuzz_config import broken_tenants, check_case, make_sandbox  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="Write the figures here.")
    args = parser.parse_args()
    if args.json is not None:
        args.json = args.json.resolve()  # before the chdir into the sandbox
    failures: list[tuple[bytes, list[str]]] = []
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = make_sandbox(Path(tmp))
        os.chdir(sandbox.root)

        @settings(max_examples=args.cases, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @seed(args.seed)
        @given(data=broken_tenants())
        def run(data: bytes) -> None:
            nonlocal count
            count += 1
            problems = check_case(sandbox, data)
            if problems:
                failures.append((data, problems))

        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
    for data, problems in failures:
        print(f"FAIL input={data!r}")
        for problem in problems:
            print("  " + problem.replace("\n", "\n  "))
    print(f"fuzz: {count} cases in {elapsed:.1f} s, {len(failures)} failing")
    if args.json is not None:
        figures = {
            "benchmark": "fuzz",
            "cases": count,
            "requested_cases": args.cases,
            "seed": args.seed,
            "seconds": elapsed,
            "failing": len(failures),
            "failures": [{"input": repr(data)[:2000], "problems": problems} for data, problems in failures[:20]],
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
