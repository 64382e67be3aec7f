#!/usr/bin/env python3
"""Write a large, valid tenant repo for benchmarks: `python examples/generate.py OUT --users N`.

The tenant is synthetic but shaped like a real one: users spread over teams spread over orgs
(each user in exactly one team), model grants spread over org, team and user scopes with no
duplicate (model, scope) pair, a few guardrail presets and agents, and an active budget plan
that fits the capacity rules. Lists are split into documents of a few thousand entries, which
the loader merges by (account, domain), as a big tenant would split its files.

YAML is written by string formatting with flow mappings: `yaml.dump` of 100,000 grants takes
longer than validating them. Needs only the standard library; importable as `generate()`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

CHUNK = 5000
"""Entries (users, members, grants) per document."""
TEAM_CREDITS = 100
"""Each team's equal share of its org's budget, in credits."""
USER_CREDITS = 5
"""The allocation of each team's first member, inside the team's share."""
BASE_MODELS = (
    ("gpt-4o", "openai/gpt-4o", 2.5, 10),
    ("gpt-4o-mini", "openai/gpt-4o-mini", 0.15, 0.6),
)


def generate(
    out_dir: Path,
    users: int,
    teams: int,
    grants: int,
    orgs: int | None = None,
    account: str = "bench",
) -> dict[str, int]:
    """Write the tenant under `out_dir` and return what it holds (users, teams, grants, ...).

    `orgs` defaults to one org per 40 teams. The catalog has two models, or as many as it takes
    for `grants` distinct (model, scope) pairs when there are fewer scopes than grants.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", account):
        raise ValueError(f"account {account!r} is not a valid name (lower-case, digits, . _ -)")
    if users < 0 or grants < 0 or teams < 1:
        raise ValueError("need users >= 0, grants >= 0 and teams >= 1")
    orgs = max(1, math.ceil(teams / 40)) if orgs is None else orgs
    if not 1 <= orgs <= teams:
        raise ValueError("need 1 <= orgs <= teams: every org has at least one team")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    domain = re.sub(r"[^a-z0-9]+", "-", account).strip("-") + ".example.com"
    tenant = _Tenant(account, domain, users, teams, orgs)
    scopes = tenant.grant_scopes()
    n_models = max(len(BASE_MODELS), math.ceil(grants / len(scopes)))
    models = _model_names(n_models)

    files: dict[str, Iterable[str]] = {
        "account.yaml": _account(tenant, models),
        "models.yaml": _models(models),
        "guardrails.yaml": _presets(tenant),
        "agents.yaml": _agents(tenant),
        "budgets.yaml": _budget(tenant),
    }
    for i, chunk in enumerate(_chunks(range(users), CHUNK)):
        files[f"directory/users-{i:03d}.yaml"] = _users(tenant, chunk)
    for i, org_chunk in enumerate(tenant.org_chunks(CHUNK)):
        files[f"directory/orgs-{i:03d}.yaml"] = _orgs(tenant, org_chunk)
    pairs = _spread_pairs(grants, len(models), len(scopes))
    for i, chunk in enumerate(_chunks(pairs, CHUNK)):
        files[f"access/grants-{i:03d}.yaml"] = _grants(tenant, chunk, models, scopes)

    documents = 0
    for name, parts in files.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(parts)
        documents += text.count("apiVersion: cockpit/v1")
        path.write_text(text, encoding="utf-8")
    return {
        "users": users,
        "teams": teams,
        "orgs": orgs,
        "grants": grants,
        "models": n_models,
        "presets": len(_PRESETS),
        "agents": len(_AGENTS),
        "files": len(files),
        "documents": documents,
    }


class _Tenant:
    """Names and membership, computed, never stored as big structures."""

    def __init__(self, account: str, domain: str, users: int, teams: int, orgs: int) -> None:
        self.account, self.domain = account, domain
        self.users, self.teams, self.orgs = users, teams, orgs

    def email(self, user: int) -> str:
        return f"user-{user:06d}@{self.domain}"

    def org_name(self, org: int) -> str:
        return f"org-{org:04d}"

    def team_of_org(self, org: int) -> range:
        """Team t belongs to org t % orgs; returned as the range of t for this org."""
        return range(org, self.teams, self.orgs)

    def org_of_team(self, team: int) -> int:
        return team % self.orgs

    def team_scope(self, team: int) -> str:
        return f"team:{self.org_name(self.org_of_team(team))}/team-{team:05d}"

    def members(self, team: int) -> range:
        """User u is in team u % teams."""
        return range(team, self.users, self.teams)

    def grant_scopes(self) -> list[str]:
        return (
            ["account"]
            + [f"org:{self.org_name(o)}" for o in range(self.orgs)]
            + [self.team_scope(t) for t in range(self.teams)]
            + [f"user:{self.email(u)}" for u in range(self.users)]
        )

    def org_chunks(self, size: int) -> Iterator[list[int]]:
        """Orgs grouped so that each document holds about `size` members (an org is never split:
        its teams must be declared in one place)."""
        chunk: list[int] = []
        members = 0
        for org in range(self.orgs):
            count = sum(len(self.members(t)) for t in self.team_of_org(org))
            if chunk and members + count > size:
                yield chunk
                chunk, members = [], 0
            chunk.append(org)
            members += count
        if chunk:
            yield chunk


def _header(kind: str, tenant: _Tenant | None, extra: str = "") -> str:
    account = f"account: {tenant.account}\n" if tenant is not None else ""
    return f"---\napiVersion: cockpit/v1\nkind: {kind}\n{account}{extra}"


def _model_names(count: int) -> list[str]:
    names = [name for name, *_ in BASE_MODELS]
    return (names + [f"bench-model-{i:02d}" for i in range(len(names) + 1, count + 1)])[:count]


def _account(tenant: _Tenant, models: list[str]) -> Iterator[str]:
    top = sum(_org_credits(tenant, o) for o in range(tenant.orgs)) + 1000  # + pool
    yield (
        f"apiVersion: cockpit/v1\nkind: Account\nname: {tenant.account}\nprotect: true\n"
        f"alias: Benchmark tenant\nemail_domain: {tenant.domain}\nstatus: active\n"
        f"admins:\n  - {{email: admin@{tenant.domain}, role: account_admin}}\n"
        f"allocation: {{monthly_credits: {top}, overflow_limit: {top // 10}, credit_factor: 1.25}}\n"
        "feature_pack: {features: [create_agents, create_connections_mcp, image_generation], "
        "config: {}}\n"
        "model_policy: {console: {allow: [], deny: []}, copilot: {allow: [], deny: []}}\n"
    )


def _models(models: list[str]) -> Iterator[str]:
    known = {name: (upstream, i, o) for name, upstream, i, o in BASE_MODELS}
    for name in models:
        upstream, price_in, price_out = known.get(name, (f"openai/{name}", 1, 2))
        yield (
            f"{_header('Model', None)}name: {name}\n"
            f"litellm: {{model: {upstream}, api_key: \"${{env:OPENAI_API_KEY}}\"}}\n"
            f"pricing: {{input_per_million: {price_in}, output_per_million: {price_out}}}\n"
        )


def _users(tenant: _Tenant, chunk: list[int]) -> Iterator[str]:
    yield _header("Directory", tenant, "domain: copilot\nusers:\n")
    for u in chunk:
        yield f"  - {{email: {tenant.email(u)}, display_name: Bench User {u:06d}}}\n"


def _orgs(tenant: _Tenant, org_chunk: list[int]) -> Iterator[str]:
    yield _header("Directory", tenant, "domain: copilot\norgs:\n")
    for org in org_chunk:
        teams = tenant.team_of_org(org)
        first_members = [m for t in teams for m in tenant.members(t)[:1]]
        admins = f"[{tenant.email(first_members[0])}]" if first_members else "[]"
        yield f"  - name: {tenant.org_name(org)}\n    admins: {admins}\n    teams:\n"
        for team in teams:
            yield f"      - name: team-{team:05d}\n        members:\n"
            members = tenant.members(team)
            if not members:
                yield "          []\n"
            for i, user in enumerate(members):
                role = "admin" if i == 0 else "member"
                yield f"          - {{user: {tenant.email(user)}, role: {role}}}\n"


def _spread_pairs(grants: int, models: int, scopes: int) -> list[int]:
    """`grants` distinct indexes into the models × scopes grid, spread over it evenly: a walk
    with a stride coprime to the grid size visits every cell once before repeating."""
    total = models * scopes
    stride = max(1, int(total * 0.618)) | 1
    while math.gcd(stride, total) != 1:
        stride += 2
    return [(k * stride) % total for k in range(grants)]


def _grants(tenant: _Tenant, chunk: list[int], models: list[str], scopes: list[str]) -> Iterator[str]:
    yield _header("ModelAccess", tenant, "domain: copilot\ngrants:\n")
    for pair in chunk:
        model, scope = models[pair % len(models)], scopes[pair // len(models)]
        deny = ", access: deny" if pair % 19 == 0 and scope != "account" else ""
        yield f"  - {{model: {model}, scope: {scope}{deny}}}\n"


_PRESETS = (
    ("pii", "PII", r"\b\d{3}-\d{2}-\d{4}\b", "block"),
    ("secrets", "Secrets", r"\bAKIA[0-9A-Z]{16}\b", "block"),
    ("emails", "E-mail addresses", r"[\w.+-]+@[\w-]+\.[\w.]+", "detect"),
)
_AGENTS = ("helpdesk", "researcher", "reviewer")


def _presets(tenant: _Tenant) -> Iterator[str]:
    for i, (code, name, regex, kind) in enumerate(_PRESETS):
        org = tenant.org_name(i % tenant.orgs)
        assign = ["account"] if i == 0 else [f"org:{org}", tenant.team_scope(i % tenant.teams)]
        assign.append(f"agent:{_AGENTS[i % len(_AGENTS)]}")
        yield (
            f"{_header('GuardrailPreset', tenant)}code: {code}\nname: {name}\n"
            f"patterns:\n  - {{name: {code}, regex: '{regex}', type: {kind}}}\n"
            f"assign: [{', '.join(dict.fromkeys(assign))}]\n"
        )


def _agents(tenant: _Tenant) -> Iterator[str]:
    for i, name in enumerate(_AGENTS):
        grants = [f"org:{tenant.org_name(o)}" for o in range(i, tenant.orgs, len(_AGENTS))][:50]
        grants = grants or [tenant.team_scope(i % tenant.teams)]
        yield (
            f"{_header('Agent', tenant)}name: {name}\n"
            f"definition: {{system_prompt: You are the {name} agent., tools: []}}\n"
            f"guardrails: [{_PRESETS[i % len(_PRESETS)][0]}]\n"
            f"grants: [{', '.join(grants)}]\n"
        )


def _org_credits(tenant: _Tenant, org: int) -> int:
    return len(tenant.team_of_org(org)) * TEAM_CREDITS + 100


def _budget(tenant: _Tenant) -> Iterator[str]:
    """Each org its teams' shares + 100; teams split equally; each team's first member
    USER_CREDITS inside the team; a few teams overridden down; pool 1,000 at the top."""
    yield (
        f"{_header('BudgetPlan', tenant)}name: bench-plan\ncycle: monthly\nactive: true\n"
        "allow_overflow: false\nallocations:\n  - {scope: pool, credits: 1000}\n"
    )
    for org in range(tenant.orgs):
        yield (
            f"  - {{scope: org:{tenant.org_name(org)}, credits: {_org_credits(tenant, org)}, "
            "overflow_cap: 50}\n"
        )
    for team in range(tenant.teams):
        members = tenant.members(team)
        if members:
            yield f"  - {{scope: user:{tenant.email(members[0])}, credits: {USER_CREDITS}}}\n"
    yield "distribute_equally:\n"
    for org in range(tenant.orgs):
        teams = tenant.team_of_org(org)
        scopes = ", ".join(tenant.team_scope(t) for t in teams)
        yield f"  - {{scopes: [{scopes}], total_credits: {len(teams) * TEAM_CREDITS}}}\n"
    yield "overrides:\n"
    for org in range(min(tenant.orgs, 10)):
        team = tenant.team_of_org(org)[0]
        yield f"  - {{scope: {tenant.team_scope(team)}, credits: {TEAM_CREDITS - 10}, reason: bench}}\n"


def _chunks(items: Iterable[int], size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="Directory to write the tenant repo into.")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--teams", type=int, default=100)
    parser.add_argument("--grants", type=int, default=5000)
    parser.add_argument("--orgs", type=int, default=None, help="Default: one per 40 teams.")
    parser.add_argument("--account", default="bench")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        counts = generate(args.out_dir, args.users, args.teams, args.grants, args.orgs, args.account)
    except ValueError as exc:
        parser.error(str(exc))
    elapsed = time.perf_counter() - started
    summary = ", ".join(f"{value} {key}" for key, value in counts.items())
    print(f"wrote {args.out_dir}: {summary} in {elapsed:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
