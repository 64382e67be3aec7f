"""Crash safety on demand: SIGKILL `cockpit apply` at random points, many times.

    python tests/bench/bench_crash.py [--trials 50] [--users 1000] [--aim mixed|uniform] [--json PATH]

Each trial copies a template database that holds the applied old tenant, starts `cockpit apply`
of the new tenant in a subprocess (with the fake Zitadel, slowed, on every other trial), kills
it with SIGKILL and checks: the database holds the whole old or the whole new state; the next
apply exits 0 and leaves exactly the new state, and Zitadel exactly what an uninterrupted apply
leaves; `cockpit plan` then shows no changes. See `tests/crash_trials.py`.

Kill points (see `crash_trials.KillPoint`): `--aim uniform` draws each kill time uniformly
across an uninterrupted run, measured first. `--aim mixed` (the default) does that for half of
the trials and aims the others: at the first write of a random table inside the DB
transaction (a trigger holds the apply there, so it dies with its transaction half written),
at a random time in the Zitadel phase, or just after the commit. Uniform kills alone land
mostly in the long phases (planning, Zitadel); the aimed ones make every run cover the
transaction.

It creates its own databases on the server named by COCKPIT_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) and drops them. Prints one line per trial and a
summary; `--json PATH` writes the summary (trials, db_phase, zitadel_phase, completed, mixed,
not_converged, seconds, and the finer counts). Exit status 1 when a state was mixed or a
trial did not converge.
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

from crash_trials import Lab, Shape, describe, summarise  # noqa: E402

SERVER = os.environ.get("COCKPIT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AIMS = {
    "uniform": ["uniform"],
    "mixed": ["uniform", "statement", "uniform", "zitadel", "uniform", "statement", "uniform", "run_end"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--users", type=int, default=1000, help="copilot users of the tenant (10%% deleted, 10%% created)")
    parser.add_argument("--aim", choices=sorted(AIMS), default="mixed")
    parser.add_argument("--zitadel-delay", type=float, default=0.01, help="seconds the fake Zitadel waits per request")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--verbose", action="store_true", help="also print each trial's problems in full")
    args = parser.parse_args()

    # Stopped with SIGTERM (or SIGINT, which background jobs ignore): drop the databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"crash trials: {args.trials} trials, {args.users} users, aim {args.aim}, seed {seed}", flush=True)
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="cockpit-crash-") as workdir:
        lab = Lab(SERVER, Shape(users=args.users), Path(workdir), zitadel_delay=args.zitadel_delay, log=lambda m: print(m, flush=True))
        try:
            lab.prepare()
            setup = time.monotonic() - started
            for index, (zitadel, kill) in enumerate(lab.kill_points(rng, args.trials, AIMS[args.aim])):
                result = lab.trial(index, zitadel, kill)
                results.append(result)
                text = describe(result)
                print(text if args.verbose else text[:400], flush=True)
        finally:
            lab.close()
    summary = summarise(results, time.monotonic() - started)
    summary.update(setup_seconds=round(setup, 1), users=args.users, aim=args.aim, seed=seed, zitadel_delay=args.zitadel_delay)
    for zitadel, t in sorted(lab.timelines.items(), reverse=True):
        summary["uninterrupted_with_zitadel" if zitadel else "uninterrupted_db_only"] = {
            "seconds": round(t.end, 2), "planning": round(t.run_start, 2), "transaction": round(t.commit - t.run_start, 2),
            "zitadel": round(t.zitadel_end - t.commit, 2), "replan": round(t.end - t.zitadel_end, 2),
            "changes": t.changes, "zitadel_steps": t.zitadel_steps,
        }
    n = max(1, summary["trials"])
    print()
    print(f"trials                 {summary['trials']} ({summary['with_zitadel']} with Zitadel), {summary['seconds_per_trial']:.1f} s each, {summary['seconds']:.0f} s in all (setup {setup:.0f} s)")
    print(f"killed while planning  {summary['planning']:3d} ({summary['planning'] / n:.0%})")
    print(f"killed in DB phase     {summary['db_phase']:3d} ({summary['db_phase'] / n:.0%})   inside the apply transaction")
    print(f"killed in Zitadel phase{summary['zitadel_phase']:4d} ({summary['zitadel_phase'] / n:.0%})   committed, Zitadel steps pending")
    print(f"killed after commit    {summary['after_commit']:3d} ({summary['after_commit'] / n:.0%})   re-plan, nothing pending")
    print(f"finished before kill   {summary['completed']:3d} ({summary['completed'] / n:.0%})")
    print(f"mixed states found     {summary['mixed']:3d}   (must be 0)")
    print(f"convergence failures   {summary['not_converged']:3d}   (must be 0)")
    uniform = summary["uniform_phases"]
    if summary["aims"].get("uniform"):
        print(f"uniform kills only     {summary['aims']['uniform']}: " + ", ".join(f"{k} {v}" for k, v in uniform.items()))
    print(f"sessions gone after    {summary['sessions_gone_seconds_max']:.2f} s at most (from the kill; nothing left holding a lock)")
    print(f"next apply took        {summary['next_apply_seconds_max']:.1f} s at most (never waited for a lock)")
    print(f"stale 'running' runs   {summary['stale_running_runs']:3d}   (rows of killed runs left as running; they block nothing)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if summary["mixed"] or summary["not_converged"] else 0


if __name__ == "__main__":
    sys.exit(main())
