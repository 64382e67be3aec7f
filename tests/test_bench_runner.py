"""tests/bench/run_all.py, the one-table benchmark runner: its quickest subset runs end to end and
prints the table with figures; a missing or failing benchmark becomes a "not run" row."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_ALL = ROOT / "tests" / "bench" / "run_all.py"
sys.path.insert(0, str(RUN_ALL.parent))

import run_all  # noqa: E402

NUMBER = r"\d[\d,]*(?:\.\d+)?"


def test_quick_validate_prints_the_table_with_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(RUN_ALL), "--quick", "--only", "validate", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"^\| benchmark +\| size +\| result +\| floor +\| × floor +\| per 1,000 resources +\|$", lines[2]), done.stdout
    assert re.match(r"^\|-+(\|-+){5}\|$", lines[3]), done.stdout
    rows = [line for line in lines if line.startswith("| validate ")]
    assert len(rows) == len(run_all.QUICK_SIZES), done.stdout
    row = re.compile(
        rf"^\| validate +\| ({NUMBER}) resources +\| ({NUMBER}) s +\| ({NUMBER}) s \(parse\) +\| ({NUMBER})× +\| ({NUMBER}) ms +\|$"
    )
    for line, size in zip(rows, run_all.QUICK_SIZES):
        match = row.match(line)
        assert match, line
        resources, seconds, floor, ratio, per_1k = (float(g.replace(",", "")) for g in match.groups())
        assert abs(resources - size) <= size * 0.1, (line, size)
        assert seconds > 0 and floor > 0 and ratio > 0 and per_1k > 0, line
    assert "not run" not in done.stdout

    combined = json.loads(out.read_text())
    assert combined["quick"] is True
    assert [b["name"] for b in combined["benchmarks"]] == ["validate"] * len(run_all.QUICK_SIZES)
    for bench in combined["benchmarks"]:
        assert bench["status"] == "ok" and bench["exit_code"] == 0, bench
        figures = bench["figures"]
        assert 0 < figures["floor_seconds"] and 0 < figures["best_seconds"], figures
        assert figures["resources"] > 0
    assert combined["table"]["markdown"] in done.stdout


def test_missing_or_failing_script_becomes_a_not_run_row(tmp_path: Path) -> None:
    missing = run_all.Job("proxy", "bench_does_not_exist.py", [])
    run_all.run_job(missing, quick=True, timeout=60, tmp=tmp_path)
    assert missing.status == "missing" and "does not exist" in missing.reason

    failing = run_all.Job("crash", "run_all.py", ["--no-such-option"])  # argparse exits 2
    run_all.run_job(failing, quick=False, timeout=60, tmp=tmp_path)
    assert failing.status == "failed" and failing.reason.startswith("exit 2"), failing.reason

    rows = run_all.rows_for([missing, failing])
    assert rows[0][0].startswith("LLM proxy") and rows[0][2].startswith("not run: tests/bench/bench_does_not_exist.py")
    assert rows[-1][0].startswith("crash trials") and rows[-1][2].startswith("not run: exit 2")
    assert run_all.table(rows).count("not run") == len(rows)
