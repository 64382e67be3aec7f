"""Run every benchmark and print one table of the figures.

Run on demand: `python tests/bench/run_all.py [--quick] [--only NAME ...] [--json PATH]`.

Each benchmark script in tests/bench/ runs as its own subprocess with `--json PATH` (a crash or
a hang in one costs its rows, not the table) and the figures it writes become rows of one
markdown table, printed on stdout (progress goes to stderr):

- validate, plan (1% changed) and apply (into an empty PostgreSQL database, plan included) at
  about 1,000, 10,000 and 100,000 resources (bench_validate.py and bench_plan.py with
  `--resources`), each next to its floor, measured in the same run: parsing the same YAML and
  SELECTing the same rows (bench_plan.py's floor; validate's floor is the parse alone, it reads
  no database), with the time per 1,000 resources so that linear growth shows;
- access impact (bench_policy.py);
- the read API: requests/s and p99 of `cockpit serve` (bench_serve.py);
- the LLM proxy against the direct call, LiteLLM's proxy and Portkey's gateway (bench_proxy.py);
- config fuzzing (bench_fuzz.py), crash trials (bench_crash.py) and API fuzzing
  (bench_api_fuzz.py).

A script that is missing, fails or writes no figures gets a "not run" row with the reason. The
exit status is 1 when a script that exists failed, else 0. `--quick` runs small sizes, one run
each and short durations: a smoke check that the table still comes out, not a measurement.
PostgreSQL benchmarks use COCKPIT_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), as the scripts do.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
GROUPS = ("validate", "plan", "policy", "serve", "proxy", "fuzz", "crash", "api_fuzz")
ALIASES = {"apply": "plan", "api-fuzz": "api_fuzz", "read": "serve", "llm": "proxy"}
QUICK_FALLBACK = {
    "proxy": (("--requests", "300"), ("--warmup", "50")),
    "crash": (("--trials", "5"),),
    "api_fuzz": (("--requests", "200"),),
}
"""For the scripts written elsewhere, in quick mode: `--quick` if their --help offers it, else
these options, each one their --help offers."""


@dataclass
class Job:
    group: str
    script: str
    args: list[str]
    size: int | None = None
    ask_quick: bool = False
    """A script written elsewhere: shrink it in quick mode as far as its --help allows."""
    command: list[str] = field(default_factory=list)
    status: str = "pending"  # ok | failed | missing | pending
    exit_code: int | None = None
    seconds: float | None = None
    figures: dict[str, Any] | None = None
    reason: str | None = None
    output_tail: str | None = None


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    quick = args.quick
    sizes = args.sizes or (QUICK_SIZES if quick else SIZES)
    runs = ["--runs", str(args.runs or (1 if quick else 3))]
    jobs: list[Job] = []
    for size in sizes:
        jobs.append(Job("validate", "bench_validate.py", ["--resources", str(size), *runs], size))
    for size in sizes:
        jobs.append(Job("plan", "bench_plan.py", ["--resources", str(size), *runs], size))
    # The policy benchmark's own tenant (20,000 users, 100,000 grants) unless quick or sized.
    if quick or args.sizes:
        policy = ["--resources", str(min(sizes) if quick else max(sizes))]
    else:
        policy = []
    jobs.append(Job("policy", "bench_policy.py", [*policy, *runs]))
    serve = []
    if quick:
        serve = ["--users", "1000", "--teams", "50", "--grants", "2000", "--duration", "1", "--connections", "16"]
    if args.serve_duration:
        serve += ["--duration", str(args.serve_duration)]
    jobs.append(Job("serve", "bench_serve.py", serve))
    jobs.append(Job("proxy", "bench_proxy.py", [], ask_quick=True))
    fuzz = ["--cases", str(args.fuzz_cases or (50 if quick else 10_000))]
    jobs.append(Job("fuzz", "bench_fuzz.py", fuzz))
    jobs.append(Job("crash", "bench_crash.py", [], ask_quick=True))
    jobs.append(Job("api_fuzz", "bench_api_fuzz.py", [], ask_quick=True))
    return [job for job in jobs if job.group in args.only]


def quick_options(group: str, script: Path) -> list[str]:
    try:
        done = subprocess.run([sys.executable, str(script), "--help"],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if "--quick" in done.stdout:
        return ["--quick"]
    fallback = QUICK_FALLBACK.get(group, ())
    return [part for option, value in fallback if option in done.stdout for part in (option, value)]


def stop(process: subprocess.Popen, signum: int) -> str:
    """Signal the script's session (the script and what it started), SIGINT first so that its
    clean-up runs (benchmark databases dropped, servers stopped), SIGKILL after 30 s; return
    its output (communicate() keeps what it read across timeouts)."""
    for sig, wait in ((signal.SIGINT, 30), (signum, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return process.communicate(timeout=wait)[0] or ""
        except subprocess.TimeoutExpired:
            continue
    return ""


def run_job(job: Job, quick: bool, timeout: float, tmp: Path) -> None:
    script = BENCH / job.script
    label = job.group + (f" at {job.size:,} resources" if job.size else "")
    if not script.exists():
        job.status, job.reason = "missing", f"tests/bench/{job.script} does not exist"
        print(f"[run_all] {label}: not run ({job.reason})", file=sys.stderr, flush=True)
        return
    out = tmp / f"{job.group}-{job.size or 0}.json"
    args = list(job.args)
    if job.ask_quick and quick:
        args += quick_options(job.group, script)
    job.command = [sys.executable, str(script.relative_to(ROOT)), *args, "--json", str(out)]
    shown = " ".join(["python", *job.command[1:-2]])
    print(f"[run_all] {label}: {shown}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(job.command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        output = stop(process, signal.SIGTERM)
        job.reason = f"timed out after {timeout:.0f} s"
    except KeyboardInterrupt:  # the script is in its own session: pass Ctrl-C on, let it clean up
        stop(process, signal.SIGINT)
        raise
    job.seconds = time.perf_counter() - started
    job.exit_code = process.returncode
    job.output_tail = "\n".join(output.splitlines()[-30:])
    if out.exists():
        try:
            job.figures = json.loads(out.read_text())
        except ValueError as exc:
            job.reason = job.reason or f"unreadable --json output: {exc}"
    if job.figures is not None and job.exit_code == 0:
        job.status = "ok"
    else:
        job.status = "failed"
        if job.reason is None:
            last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "")
            job.reason = f"exit {job.exit_code}" + (f": {last[:160]}" if last else "")
            if job.exit_code == 0:
                job.reason = "exit 0 but no --json figures written (does it accept --json PATH?)"
    state = "done" if job.status == "ok" else f"FAILED ({job.reason})"
    print(f"[run_all] {label}: {state} in {job.seconds:.1f} s", file=sys.stderr, flush=True)
    if job.status != "ok":
        print("  " + job.output_tail.replace("\n", "\n  "), file=sys.stderr, flush=True)


# -- formatting ---------------------------------------------------------------------------------


def secs(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} s"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value:.3f} s"


def per_thousand(seconds: float, resources: int) -> str:
    ms = seconds / resources * 1000 * 1000
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:,.0f} ms"


def num(value: Any, digits: int = 0) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.{digits}f}"


COUNTS = {
    "crash": (("mixed", "mixed states"), ("not_converged", "not converged"),
              ("db_phase", "killed inside the DB transaction"), ("zitadel_phase", "in the Zitadel phase"),
              ("completed", "finished before the kill")),
    "api_fuzz": (("operations", "operations"), ("failures", "failures")),
}
"""Top-level counts shown for crash trials and API fuzzing, in this order (else all of them)."""

HEADER = ("benchmark", "size", "result", "floor", "× floor", "per 1,000 resources")


def not_run(what: str, size: str, job: Job | None) -> tuple[str, ...]:
    reason = job.reason if job is not None else "not selected"
    return (what, size, f"not run: {reason}", "", "", "")


def exited(job: Job) -> str:
    """For figures written by a script that then failed (failing fuzz cases exit 1)."""
    return f" (script {job.reason})" if job.status == "failed" else ""


def size_label(job: Job, figures: dict[str, Any] | None) -> str:
    resources = (figures or {}).get("resources") or job.size
    return f"{resources:,} resources" if resources else "—"


def rows_for(jobs: list[Job]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    by_group: dict[str, list[Job]] = {}
    for job in jobs:
        by_group.setdefault(job.group, []).append(job)

    for job in by_group.get("validate", []):
        f = job.figures
        if job.status != "ok" or f is None:
            rows.append(not_run("validate", size_label(job, None), job))
            continue
        best, floor = f["best_seconds"], f["floor_seconds"]
        rows.append(("validate", size_label(job, f), secs(best), f"{secs(floor)} (parse)",
                     f"{best / floor:.1f}×", per_thousand(best, f["resources"])))

    plan_jobs_ = by_group.get("plan", [])
    for what in ("plan, 1% changed", "apply, empty database (plan included)"):
        for job in plan_jobs_:
            f = job.figures
            if job.status != "ok" or f is None:
                rows.append(not_run(what, size_label(job, None), job))
                continue
            seconds = f["best_plan_seconds"] if what.startswith("plan") else f["apply_seconds"]
            floor = f["floor_seconds"]
            rows.append((what, size_label(job, f), secs(seconds), f"{secs(floor)} (parse + SELECT)",
                         f"{seconds / floor:.1f}×", per_thousand(seconds, f["resources"])))

    for job in by_group.get("policy", []):
        f = job.figures
        if job.status != "ok" or f is None:
            rows.append(not_run("access impact (policy)", "—", job))
            continue
        rows.append(("access impact (policy)", size_label(job, f),
                     f"access_impact {secs(f['best_access_impact_seconds'])}, build_graphs "
                     f"{secs(f['best_build_graphs_seconds'])}, {f['changes']:,} changes",
                     "", "", per_thousand(f["best_access_impact_seconds"], f["resources"])))

    for job in by_group.get("serve", []):
        f = job.figures
        if job.status != "ok" or f is None:
            rows.append(not_run("read API (cockpit serve, 1 worker)", "—", job))
            continue
        users = f"{f['tenant']['users']:,} users"
        for m in f["measurements"]:
            path = "/v1/me/context" if m["route"] == "me" else "/v1/copilot/models/effective"
            rows.append((f"read API `GET {path}`, {m['connections']} connections", users,
                         f"{m['rps']:,.0f} req/s, p50 {m['p50']:.2f} ms, p99 {m['p99']:.2f} ms"
                         + (f", {m['errors']:.0f} non-2xx" if m.get("errors") else "")
                         + ("" if f["client"] == "wrk" else " (asyncio client: lower bound)"),
                         "", "", ""))

    for job in by_group.get("proxy", []):
        f = job.figures
        if job.status != "ok" or f is None:
            rows.append(not_run("LLM proxy vs direct call and LiteLLM proxy", "1 worker each", job))
            continue
        has = lambda key: isinstance(f.get(key), (int, float)) and not isinstance(f.get(key), bool)  # noqa: E731
        rps = lambda key, name: f"{name} {f[key]:,.0f} req/s" if has(key) else f"{name} —"  # noqa: E731
        added = lambda key: f"+{f[key]:.2f} ms" if has(key) else "—"  # noqa: E731
        direct = rps("direct_rps", "direct")
        share = f" ({f['cockpit_rps'] / f['direct_rps']:.0%} of direct)" if has("cockpit_rps") and has("direct_rps") and f["direct_rps"] else ""
        rows.append(("LLM proxy: Cockpit vs direct call", "1 worker",
                     f"{rps('cockpit_rps', 'Cockpit')}{share}, added p50 {added('cockpit_added_p50_ms')}",
                     direct, "", ""))
        ratio = f": ratio {f['ratio']:.2f}" + (f" (target ≥ {f['ratio_target']:g})" if has("ratio_target") else "") if has("ratio") else ""
        rows.append(("LLM proxy: Cockpit vs LiteLLM proxy", "1 worker each",
                     f"{rps('cockpit_rps', 'Cockpit')} vs {rps('litellm_rps', 'LiteLLM')}{ratio}; added p50 "
                     f"Cockpit {added('cockpit_added_p50_ms')} vs LiteLLM {added('litellm_added_p50_ms')}",
                     direct, "", ""))

    for job in by_group.get("fuzz", []):
        f = job.figures
        if f is None:  # failing cases still write figures (exit 1): show them
            rows.append(not_run("config fuzz (validate + plan)", "—", job))
            continue
        rows.append(("config fuzz (validate + plan)", f"{f['cases']:,} cases",
                     f"{f['failing']:,} failing, {secs(f['seconds'])}{exited(job)}", "", "", ""))

    for group, what, first in (("crash", "crash trials (apply SIGKILLed)", "trials"),
                               ("api_fuzz", "API fuzzing", "requests")):
        for job in by_group.get(group, []):
            f = job.figures
            if f is None:
                rows.append(not_run(what, "—", job))
                continue
            counts = {k: v for k, v in f.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            head = f"{num(counts.pop(first))} {first}" if first in counts else "—"
            known = [(key, label) for key, label in COUNTS.get(group, ()) if key in counts]
            if known:  # the figures that matter, in words
                rest = ", ".join(f"{num(counts[key])} {label}" for key, label in known)
            else:  # a shape this runner does not know yet: every top-level count
                rest = ", ".join(f"{num(v, 0 if float(v).is_integer() else 2)} {k.replace('_', ' ')}"
                                 for k, v in counts.items() if k not in ("seconds", "seed"))
            if "seconds" in counts:
                rest += f"{', ' if rest else ''}{secs(counts['seconds'])}"
            rows.append((what, head, (rest or "—") + exited(job), "", "", ""))
    return rows


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(HEADER), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="Small sizes, one run, short durations: a smoke check.")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help=f"Benchmarks to run (space or comma separated): {', '.join(GROUPS)} "
                             "(apply = plan).")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="Write every figure and the table here.")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, metavar="N",
                        help=f"Resource counts for validate/plan/apply (default {' '.join(map(str, SIZES))}; "
                             f"quick {' '.join(map(str, QUICK_SIZES))}).")
    parser.add_argument("--runs", type=int, default=None, help="Runs per size (default 3; quick 1).")
    parser.add_argument("--fuzz-cases", type=int, default=None, help="Config fuzz cases (default 10,000; quick 50).")
    parser.add_argument("--serve-duration", type=int, default=None, help="Seconds per read API measurement.")
    parser.add_argument("--timeout", type=float, default=None,
                        help="Seconds per script before it is stopped (default 3600; quick 300).")
    parser.add_argument("--table-from", type=Path, default=None, metavar="PATH",
                        help="Run nothing: print the table again from the --json file of an earlier run.")
    args = parser.parse_args(argv)
    if args.table_from is not None:
        saved = json.loads(args.table_from.read_text())
        jobs = [Job(b["name"], Path(b["script"]).name, [], b.get("size"), command=b.get("command") or [],
                    status=b["status"], exit_code=b.get("exit_code"), seconds=b.get("seconds"),
                    figures=b.get("figures"), reason=b.get("reason"))
                for b in saved["benchmarks"]]
        print(saved["caption"] + "\n\n" + table(rows_for(jobs)), flush=True)
        return 0
    only = {ALIASES.get(name, name) for item in (args.only or GROUPS) for name in item.replace(",", " ").split()}
    unknown = only - set(GROUPS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    args.only = only
    timeout = args.timeout or (300.0 if args.quick else 3600.0)

    jobs = plan_jobs(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        for job in jobs:
            run_job(job, args.quick, timeout, Path(tmp))
    elapsed = time.perf_counter() - started

    rows = rows_for(jobs)
    caption = (f"Cockpit benchmarks{' (--quick: smoke sizes, not a measurement)' if args.quick else ''}: "
               f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"{elapsed:.0f} s in all")
    text = table(rows)
    print(caption + "\n\n" + text, flush=True)
    if args.json is not None:
        combined = {
            "caption": caption,
            "quick": args.quick,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "seconds": elapsed,
            "benchmarks": [
                {"name": job.group, "script": f"tests/bench/{job.script}", "size": job.size, "status": job.status,
                 "command": job.command, "exit_code": job.exit_code, "seconds": job.seconds, "reason": job.reason,
                 "figures": job.figures, **({"output_tail": job.output_tail} if job.status == "failed" else {})}
                for job in jobs
            ],
            "table": {"header": list(HEADER), "rows": [list(row) for row in rows], "markdown": text},
        }
        args.json.write_text(json.dumps(combined, indent=2, ensure_ascii=False) + "\n")
    return 1 if any(job.status == "failed" for job in jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
