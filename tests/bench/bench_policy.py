"""Benchmark: access impact between a generated tenant and a modified copy.

Run on demand: `python tests/bench/bench_policy.py [--users N --teams N --grants N --runs N]`.
Generates the tenant (20,000 users, 2,000 teams, 100,000 grants by default), builds its desired
state, derives a modified copy in memory (a new model granted account-wide, so every user gains
it; 200 users removed; 50 user-level denies; 10 budget allocations changed; an agent granted to
an org) and times `build_graphs` and `access_impact`. Target: well under 2 s.

`--resources N` sizes the tenant like bench_plan.py's for about N resources instead; `--json PATH`
writes the figures to PATH (for tests/bench/run_all.py).
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

from cockpit.config.validate import validate_path  # noqa: E402
from cockpit.policy.graph import build_graphs  # noqa: E402
from cockpit.policy.impact import access_impact  # noqa: E402
from cockpit.resources.desired import desired_state  # noqa: E402
from cockpit.resources.state import Resource, State  # noqa: E402


def modified(state: State, account: str) -> State:
    """A copy with changes a big pull request could make."""
    after = State(dict(state.resources))
    after.add(Resource("model", None, ("bench-new",), {"description": None, "litellm": {}, "input_per_million": 1.0, "output_per_million": 1.0}))
    after.add(Resource("model_grant", account, ("copilot", "bench-new", "account", ""), {"access": "allow"}))
    users = sorted(r.key[0] for r in state.of_type("copilot_user", account))
    removed = set(users[:200])
    for address, resource in list(after.resources.items()):
        if resource.type in ("copilot_user", "copilot_team_member", "copilot_org_admin") and resource.key[-1] in removed:
            del after.resources[address]
        elif resource.type == "budget_allocation" and resource.key[-1] in removed:
            del after.resources[address]
    for email in users[200:250]:
        after.add(Resource("model_grant", account, ("copilot", "gpt-4o-mini", "user", email), {"access": "deny"}))
    allocations = sorted((r for r in state.of_type("budget_allocation", account) if r.key[1] == "team"), key=lambda r: r.key)
    for allocation in allocations[:10]:
        after.add(Resource(allocation.type, account, allocation.key, {**allocation.fields, "credits": allocation.fields["credits"] - 1}))
    org = sorted(r.key[0] for r in state.of_type("copilot_org", account) if r.key[0] != "global")[0]
    after.add(Resource("agent_grant", account, ("reviewer", "org", org), {}))
    return after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--teams", type=int, default=2_000)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--resources", type=int, default=None,
                        help="Size the tenant like bench_plan.py's for about N resources (overrides --users/--teams/--grants).")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="Write the figures here.")
    args = parser.parse_args()
    if args.resources is not None:
        args.users, args.teams, args.grants = tenant_for_resources(args.resources)
    with tempfile.TemporaryDirectory() as tmp:
        counts = generate(Path(tmp), users=args.users, teams=args.teams, grants=args.grants)
        result = validate_path(Path(tmp))
        before = desired_state(result.tenant, fingerprint=lambda *a: None)
    after = modified(before, "bench")
    print(f"tenant: {counts}; {len(before)} resources before, {len(after)} after")
    builds, impacts, unchanged = [], [], []
    for run in range(args.runs):
        start = time.perf_counter()
        build_graphs(before)
        built = time.perf_counter() - start
        start = time.perf_counter()
        impact = access_impact(before, after)
        total = time.perf_counter() - start
        same = time.perf_counter()
        assert access_impact(before, before) == ()
        same = time.perf_counter() - same
        kinds: dict[str, int] = {}
        for change in impact:
            kinds[change.what] = kinds.get(change.what, 0) + 1
        print(
            f"run {run + 1}: build_graphs {built:.3f}s; access_impact {total:.3f}s "
            f"({len(impact)} changes: {kinds}); unchanged state {same:.3f}s"
        )
        builds.append(built)
        impacts.append(total)
        unchanged.append(same)
    if args.json is not None:
        figures = {
            "benchmark": "policy",
            "tenant": counts,
            "resources": len(before),
            "resources_after": len(after),
            "changes": len(impact),
            "changes_by_kind": kinds,
            "runs": args.runs,
            "build_graphs_seconds": builds,
            "access_impact_seconds": impacts,
            "unchanged_seconds": unchanged,
            "best_build_graphs_seconds": min(builds),
            "best_access_impact_seconds": min(impacts),
            "best_unchanged_seconds": min(unchanged),
            "target_seconds": 2.0,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
