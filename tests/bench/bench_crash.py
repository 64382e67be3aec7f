"""Crash safety on demand: SIGKILL `cockpit apply` at random points, many times.

    python tests/bench/bench_crash.py [--trials 50] [--users 1000] [--aim mixed|uniform] [--quick] [--json PATH]

Each trial copies a template database that holds the applied old tenant, starts `cockpit apply`
of the new tenant in a subprocess (with the fake Zitadel, slowed, on about half of the trials),
kills it with SIGKILL and checks: the database holds the whole old or the whole new state; no
lock outlives the process; the next apply exits 0 and leaves exactly the new state, and Zitadel
exactly what an uninterrupted apply leaves; `cockpit plan` then shows no changes. See
`tests/harness/crash.py`.

Kill points (see `harness.crash.KillPoint`): `--aim uniform` draws each kill time uniformly
across an uninterrupted run, measured first. `--aim mixed` (the default) does that for half of
the trials and aims the others: at the first write of a random table inside the DB
transaction (a trigger holds the apply there, so it dies with its transaction half written;
meanwhile another apply must time out on its locks, naming it), at a random time in the
Zitadel phase, or just after the commit. Uniform kills alone land mostly in the long phases
(planning, Zitadel); the aimed ones make every run cover the transaction.

It creates its own databases on the server named by COCKPIT_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) and drops them. Prints one line per trial and a
summary; `--json PATH` writes it: trials, db_phase, zitadel_phase, completed, mixed,
not_converged and seconds at the top level, finer counts and timings under `detail`. Exits 1
when a state was mixed or a trial did not converge.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.crash import Lab, Shape, describe, summarise  # noqa: E402

SERVER = os.environ.get("COCKPIT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AIMS = {
    "uniform": ["uniform"],
    "mixed": ["uniform", "statement", "uniform", "zitadel", "uniform", "statement", "uniform", "run_end"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=None, help="trials to run (default 50; quick 5)")
    parser.add_argument("--users", type=int, default=None, help="copilot users of the tenant, 10%% of them deleted and 10%% created (default 1000; quick 200)")
    parser.add_argument("--quick", action="store_true", help="a smoke check: 5 trials of a 200-user tenant")
    parser.add_argument("--aim", choices=sorted(AIMS), default="mixed")
    parser.add_argument("--zitadel-delay", type=float, default=0.01, help="seconds the fake Zitadel waits per request")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--verbose", action="store_true", help="print each trial's problems in full")
    args = parser.parse_args()
    trials = args.trials if args.trials is not None else 5 if args.quick else 50
    users = args.users if args.users is not None else 200 if args.quick else 1000

    # Stopped with SIGTERM (or SIGINT, which background jobs ignore): drop the databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"crash trials: {trials} trials, {users} users, aim {args.aim}, seed {seed}", flush=True)
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="cockpit-crash-") as workdir:
        lab = Lab(SERVER, Shape(users=users), Path(workdir), zitadel_delay=args.zitadel_delay, log=lambda m: print(m, flush=True))
        try:
            lab.prepare()
            setup = time.monotonic() - started
            for index, (zitadel, kill) in enumerate(lab.kill_points(rng, trials, AIMS[args.aim])):
                result = lab.trial(index, zitadel, kill)
                results.append(result)
                text = describe(result)
                print(text if args.verbose else text[:600], flush=True)
        finally:
            lab.close()
    summary = summarise(results, time.monotonic() - started)
    detail = summary["detail"]
    detail.update(setup_seconds=round(setup, 1), users=users, aim=args.aim, seed=seed, zitadel_delay=args.zitadel_delay)
    for zitadel, t in sorted(lab.timelines.items(), reverse=True):
        detail["uninterrupted_with_zitadel" if zitadel else "uninterrupted_db_only"] = {
            "seconds": round(t.end, 2), "planning": round(t.run_start, 2), "transaction": round(t.commit - t.run_start, 2),
            "zitadel": round(t.zitadel_end - t.commit, 2), "replan": round(t.end - t.zitadel_end, 2),
            "changes": t.changes, "zitadel_steps": t.zitadel_steps,
        }
    n = max(1, summary["trials"])

    def share(count: int) -> str:
        return f"{count:3d} ({count / n:4.0%})"

    print()
    print(f"trials                   {summary['trials']} ({detail['with_zitadel']} with Zitadel), {detail['seconds_per_trial']:.1f} s each, {summary['seconds']:.0f} s in all (setup {setup:.0f} s)")
    print(f"killed while planning    {share(detail['planning'])}")
    print(f"killed in DB phase       {share(summary['db_phase'])}  inside the apply's transaction")
    print(f"killed in Zitadel phase  {share(summary['zitadel_phase'])}  committed, Zitadel steps pending")
    print(f"killed after commit      {share(detail['after_commit'])}  in the re-plan, nothing pending")
    print(f"finished before kill     {share(summary['completed'])}")
    if detail["aims"].get("uniform"):
        print(f"  of the {detail['aims']['uniform']} uniform kills: " + ", ".join(f"{k} {v}" for k, v in detail["uniform_phases"].items()))
    print(f"mixed states found       {summary['mixed']:3d}  (must be 0)")
    print(f"convergence failures     {summary['not_converged']:3d}  (must be 0)")
    print(f"sessions gone after      {detail['sessions_gone_seconds_max']:.2f} s at most after the kill")
    print(f"lock probes              {detail['lock_probes']:3d}  applies run while a killed one's session held its locks: gave up, naming it, in {detail['lock_probe_seconds_max']:.1f} s at most")
    print(f"next apply took          {detail['next_apply_seconds_max']:.1f} s at most")
    print(f"stale 'running' runs     {detail['stale_running_runs']:3d}  (a killed run's row stays 'running'; it blocks nothing)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if summary["mixed"] or summary["not_converged"] else 0


if __name__ == "__main__":
    sys.exit(main())
