"""API fuzzing at length: Schemathesis against every operation of `cockpit serve`, as every caller.

Run on demand: `python tests/bench/bench_api_fuzz.py [--examples N] [--seed S] [--postgres]
[--operation "GET /v1/audit" ...] [--json PATH]`. Uses the world, callers and checks of
tests/test_api_fuzz.py (acme and globex applied; no 5xx, responses as documented, invalid requests
refused, nothing of globex for a caller of acme) over a fresh SQLite database, or with
`--postgres` a fresh database on `COCKPIT_TEST_DATABASE_URL`. `--examples` is the number of
generated requests per operation and generation mode, each sent as every caller. Prints the
number of requests and every distinct failure (exit 1 if any); `--json PATH` also writes
`{"requests": N, "operations": M, "failures": F, "seconds": S}`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_api_fuzz import SEED, fuzz, postgres_database, world_over  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=50, help="Generated requests per operation and mode (default 50).")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--postgres", action="store_true", help="Use a fresh database on COCKPIT_TEST_DATABASE_URL.")
    parser.add_argument("--operation", action="append", default=None, metavar="LABEL", help='Only this operation, e.g. "GET /v1/audit" (repeatable).')
    parser.add_argument("--quiet", action="store_true", help="No progress lines.")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="Write the figures here.")
    args = parser.parse_args()
    if args.json is not None:
        args.json = args.json.resolve()  # before the world's chdir into its sandbox
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        if args.postgres:
            server = os.environ.get("COCKPIT_TEST_DATABASE_URL", "").strip()
            if not server:
                parser.error("--postgres needs COCKPIT_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
            url = stack.enter_context(postgres_database(server))
        else:
            url = f"sqlite:///{root / 'cockpit.db'}"
        world = stack.enter_context(world_over(url, root / "world"))
        progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
        report = fuzz(world, examples=args.examples, seed=args.seed, operations=args.operation, progress=progress)
    if report.distinct:
        print(report.text(limit=500))
    print(f"api fuzz: {report.requests} requests over {report.operations} operations as {len(world.callers)} callers "
          f"in {report.seconds:.1f} s, {len(report.distinct)} distinct failures; statuses {dict(sorted(report.statuses.items()))}")
    if args.json is not None:
        args.json.write_text(json.dumps(report.summary(), indent=2) + "\n")
    return 1 if report.distinct else 0


if __name__ == "__main__":
    sys.exit(main())
