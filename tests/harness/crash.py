"""Crash-safety trials: `cockpit apply` killed with SIGKILL at random points on PostgreSQL.

Shared by the CI slice (`tests/test_crash_safety.py`) and the on-demand benchmark
(`tests/bench/bench_crash.py`). A trial starts from a database that holds the applied "old"
tenant (copied from a template database, which is fast), runs `cockpit apply --auto-approve
--allow-delete` of the "new" tenant in a subprocess, sends SIGKILL to it, and then requires:

- the configuration tables hold exactly the old state or exactly the new one, never a mix
  (`fingerprint`: every row of every non-runtime table, ids replaced by what they point to,
  timestamps and ciphertexts left out);
- no advisory lock outlives the killed process, so the next apply does not wait;
- the next apply exits 0 (finishing Zitadel steps the killed one left in the journal), the
  database is then exactly the new state, the fake Zitadel holds exactly what an uninterrupted
  apply gives (no duplicate grants), and `cockpit plan --detailed-exitcode` says no changes.

The tenants are generated here (`write_tenant`): one account with two directories, a catalog,
model grants, features, guardrails, agents, connections with secrets, marketplace listings and
budget plans, and a Zitadel project. "new" creates, updates and deletes resources of every
kind, and adds, updates and revokes Zitadel grants. Zitadel is the fake of `tests/fakes/`,
slowed with its `delay` switch so that its phase of the apply lasts long enough to be hit.

Kill points (`KillPoint`): a random time across an uninterrupted run (measured first); the
first write of a chosen table inside the DB transaction (a trigger there waits for an advisory
lock the trial holds, so the apply is stopped with its transaction half written, and killed);
just after the commit; or a random time in the Zitadel phase. Where a kill landed is read from
the database afterwards (`TrialResult.phase`): before the apply's transaction (no run row),
inside it (a run row, the old state), after the commit with Zitadel steps pending, after the
commit otherwise (re-plan), or not at all (the apply had finished).

Needs PostgreSQL (template databases, advisory locks, triggers); imports `fakes.zitadel`, so
tests/ must be on sys.path (pytest does that; the benchmark adds it).
"""

from __future__ import annotations

import decimal
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import psycopg
import sqlalchemy as sa
import yaml
from psycopg import sql
from sqlalchemy.engine import make_url

from cockpit.store import tables as cockpit_tables
from cockpit.store.engine import create_engine_for, normalise_database_url
from cockpit.store.migrate import upgrade
from cockpit.store.tables import metadata, runtime

from fakes.zitadel import FakeZitadel

ACCOUNT = "crash"
DOMAIN = "crash.example.com"
PROJECT = "401234567890123456"
ORG = "401234567890120001"
PAT = "pat-for-crash-trials-0123456789abcdef"
SECRET_KEY = "crash-trials-secret-key-0123456789abcdef0123"
USER_ID_BASE = 401234567890200000
SECRETS = {"CRASH_MODEL_KEY": "sk-crash-model-key-1111", "CRASH_CONNECTION_TOKEN": "crash-connection-token-2222"}

# -- tenants ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How big the tenant is. `users` drives everything: 10% of them are deleted, 10% created."""

    users: int = 1500
    orgs: int = 8
    teams: int = 5
    """Teams per org."""
    agents: int = 20
    presets: int = 5
    connections: int = 6


def email(i: int) -> str:
    return f"u{i:05d}@{DOMAIN}"


def admin_email() -> str:
    return f"admin@{DOMAIN}"


def _users(shape: Shape, version: str) -> range:
    cut = shape.users // 10
    return range(0, shape.users) if version == "old" else range(cut, shape.users + cut)


def _orgs(shape: Shape, version: str) -> list[int]:
    return list(range(shape.orgs)) if version == "old" else list(range(1, shape.orgs + 1))


def _teams(shape: Shape, version: str, org: int) -> list[int]:
    if version == "new" and org == 1:
        return list(range(1, shape.teams + 1))
    return list(range(shape.teams))


def _place(shape: Shape, version: str, i: int) -> tuple[int, int]:
    """(org, team) of copilot user i."""
    org, team = i % shape.orgs, (i // shape.orgs) % shape.teams
    if version == "new":
        if i % 17 == 3:
            team = (team + 1) % shape.teams
        if org == 0:
            org = shape.orgs
        if org == 1 and team == 0:
            team = shape.teams
    return org, team


def _team_admin(version: str, i: int) -> bool:
    admin = (i // 40) % 6 == 0 and i % 40 < 8
    return admin != (version == "new" and i % 13 == 0)


def _scope_org(k: int, shape: Shape) -> str:
    """An org present in both versions."""
    return f"org:o{1 + k % (shape.orgs - 1)}"


def tenant_documents(shape: Shape, version: str) -> dict[str, list[dict[str, Any]]]:
    """The tenant as documents per file name."""
    new = version == "new"
    users = _users(shape, version)
    orgs = _orgs(shape, version)
    models = list(range(1, 5)) if new else list(range(0, 4))
    files: dict[str, list[dict[str, Any]]] = {}
    base = {"apiVersion": "cockpit/v1"}

    files["account.yaml"] = [{
        **base, "kind": "Account", "name": ACCOUNT, "alias": "Crash Test Inc" if new else "Crash Test",
        "email_domain": DOMAIN,
        "admins": [{"email": admin_email(), "role": "account_admin"},
                   {"email": email(60 if new else 50), "role": "account_admin" if new else "console_org_admin"}],
        "allocation": {"monthly_credits": 120000 if new else 100000, "overflow_limit": 1000, "credit_factor": 1.5 if new else 1.25},
        "feature_pack": {"features": ["create_agents", "image_generation", "model_access"], "config": {"max_agents_per_user": 7 if new else 5}},
        "model_policy": {"console": {"allow": [], "deny": ["model-2" if new else "model-3"]}},
        "zitadel": {"project_id": PROJECT, "organization_id": ORG, "role_prefix": "crash_"},
    }]
    files["models.yaml"] = [{
        **base, "kind": "Model", "name": f"model-{m}",
        "litellm": {"model": f"openai/model-{m}", "api_key": "${env:CRASH_MODEL_KEY}"},
        "pricing": {"input_per_million": 3.0 if (new and m == 1) else 1.0 + m, "output_per_million": 10.0},
    } for m in models]

    # copilot directory
    members: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for i in users:
        entry = {"user": email(i)}
        if _team_admin(version, i):
            entry["role"] = "admin"
        members.setdefault(_place(shape, version, i), []).append(entry)
    org_docs = []
    for org in orgs:
        people = sorted(m["user"] for t in _teams(shape, version, org) for m in members.get((org, t), []))
        org_docs.append({
            "name": f"o{org}",
            "description": f"Org {org}" + (" (reorganised)" if new and org == 1 else ""),
            "admins": people[0:3:2] if new else people[:2],
            "teams": [{"name": f"t{t}", "members": members.get((org, t), [])} for t in _teams(shape, version, org)],
        })
    files["directory/copilot.yaml"] = [{
        **base, "kind": "Directory", "account": ACCOUNT, "domain": "copilot",
        "users": [{"email": email(i), "display_name": f"User {i}" + (" Jr." if new and i % 7 == 0 else ""),
                   **({"status": "suspended"} if new and i % 29 == 0 else {})} for i in users],
        "orgs": org_docs,
    }]
    console = [i for i in users if i % 4 == 0]
    console_teams = [("ops", "sre"), ("dev", "api")] + ([("dev", "web")] if new else [("ops", "noc")])
    console_members: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for n, i in enumerate(console):
        console_members.setdefault(console_teams[(n + (i % 5 == 0 and new)) % len(console_teams)], []).append({"user": email(i)})
    files["directory/console.yaml"] = [{
        **base, "kind": "Directory", "account": ACCOUNT, "domain": "console",
        "users": [{"email": email(i), "display_name": f"Console {i}" + (" (ops)" if new and i % 3 == 0 else "")} for i in console],
        "orgs": [{"name": org, "admins": [m["user"] for t in teams for m in console_members.get((org, t), [])[:1]],
                  "teams": [{"name": t, "members": console_members.get((org, t), [])} for t in teams]}
                 for org, teams in (("ops", [t for o, t in console_teams if o == "ops"]), ("dev", [t for o, t in console_teams if o == "dev"]))],
    }]

    # model access and features
    grants = []
    for org in orgs:
        grants.append({"model": "model-1", "scope": f"org:o{org}"})
        grants.append({"model": "model-4" if new else "model-0", "scope": f"org:o{org}"})
        for t in _teams(shape, version, org):
            deny = (org + t) % (2 if new else 3) == 0
            grants.append({"model": "model-2", "scope": f"team:o{org}/t{t}", **({"access": "deny"} if deny else {})})
    grants += [{"model": "model-3", "scope": f"user:{email(i)}"} for i in users if i % 13 == 0 or (new and i % 19 == 0)]
    console_grants = [{"model": "model-1", "scope": f"team:{o}/{t}"} for o, t in console_teams]
    console_grants += [{"model": "model-3" if new else "model-2", "scope": f"user:{email(i)}"} for i in console if i % 8 == 0]
    files["access/models.yaml"] = [
        {**base, "kind": "ModelAccess", "account": ACCOUNT, "domain": "copilot", "grants": grants},
        {**base, "kind": "ModelAccess", "account": ACCOUNT, "domain": "console", "grants": console_grants},
    ]
    entitlements = []
    for org in orgs:
        for t in _teams(shape, version, org):
            size = 2048 if new and (org + t) % 2 else 1024
            entitlements.append({"feature": "image_generation", "scope": f"team:o{org}/t{t}",
                                 **({"enabled": False} if new and t == 2 else {}), "config": {"size": size}})
    entitlements += [{"feature": "create_agents", "scope": f"user:{email(i)}"} for i in users if i % 23 == 0]
    files["access/features.yaml"] = [{**base, "kind": "Features", "account": ACCOUNT, "domain": "copilot", "entitlements": entitlements}]

    # guardrails, agents, connections, marketplace
    presets = range(1, shape.presets + 1) if new else range(shape.presets)
    files["guardrails.yaml"] = [{
        **base, "kind": "GuardrailPreset", "account": ACCOUNT, "code": f"g{k}", "name": f"Preset {k}",
        "config": {"mode": "pre_call", "log_matches": bool(new and k % 2)},
        "patterns": [{"name": f"p{j}", "regex": f"\\bsecret{k}{j}\\b", "type": ("detect" if new and j == 1 else "block")}
                     for j in range(4 if new else 3)],
        "assign": [_scope_org(k + (1 if new else 0), shape)] + (["account"] if new and k % 2 else []),
    } for k in presets]
    cut = shape.agents // 5
    agents = range(cut, shape.agents + cut) if new else range(shape.agents)
    files["agents.yaml"] = [{
        **base, "kind": "Agent", "account": ACCOUNT, "name": f"a{k}",
        "definition": {"system_prompt": f"Agent {k}, " + ("version 2" if new and k % 2 == 0 else "version 1"), "tools": ["search"]},
        "guardrails": ["g1"] + ([("g3" if new else "g2")] if k % 2 else []),
        "grants": [f"team:o{1 + k % (shape.orgs - 1)}/t1"] + ([_scope_org(k, shape)] if new and k % 3 == 0 else []),
    } for k in agents]
    connections = range(1, shape.connections + 1) if new else range(shape.connections)
    files["connections.yaml"] = [{
        **base, "kind": "Connection", "account": ACCOUNT, "name": f"c{k}", "type": "openapi",
        "config": {"base_url": f"https://api{k}.{DOMAIN}", "timeout_seconds": 60 if new and k % 2 else 30},
        "secret": {"token": "${env:CRASH_CONNECTION_TOKEN}"},
        "grants": [{"scope": _scope_org(k + (1 if new else 0), shape), **({"can_manage": True} if new else {})}],
    } for k in connections]
    listings = [{
        **base, "kind": "MarketplaceListing", "account": ACCOUNT, "entity": f"agent:a{k}",
        "title": f"Agent {k}" + (" (v2)" if new else ""), "grants": [_scope_org(k, shape)] if k % 2 else [],
    } for k in agents if k % 3 == 0]
    listings.append({**base, "kind": "MarketplaceListing", "account": ACCOUNT, "entity": "connection:c2", "title": "Connection 2", "published": not new})
    files["marketplace.yaml"] = listings

    # budgets
    team_scopes = [f"team:o2/t{t}" for t in _teams(shape, version, 2)]
    plans = [{
        **base, "kind": "BudgetPlan", "account": ACCOUNT, "name": "main", "active": True,
        "allocations": [{"scope": f"org:o{org}", "credits": 1200 if new else 1000, "overflow_cap": 50} for org in orgs] + [{"scope": "pool", "credits": 500}],
        "distribute_equally": [{"scopes": team_scopes, "total_credits": 600}],
        "overrides": [{"scope": "team:o2/t1", "credits": 300 if new else 250, "reason": "launch"}],
    }]
    extra = "spare" if new else "old-plan"
    plans.append({**base, "kind": "BudgetPlan", "account": ACCOUNT, "name": extra, "active": False, "cycle": "quarterly",
                  "allocations": [{"scope": "org:o1", "credits": 500}]})
    files["budgets.yaml"] = plans
    return files


def write_tenant(root: Path, shape: Shape, version: str) -> Path:
    """Write the old or new tenant under `root` (replacing what is there); returns `root`."""
    for path in sorted(root.rglob("*.yaml")) if root.exists() else ():
        path.unlink()
    for name, documents in tenant_documents(shape, version).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=None, width=200))
    return root


def everyone(shape: Shape) -> list[str]:
    """Every e-mail either version names: they all exist in Zitadel, with fixed ids."""
    return [admin_email()] + [email(i) for i in range(shape.users + shape.users // 10)]


def user_id(address: str) -> str:
    if address == admin_email():
        return str(USER_ID_BASE - 1)
    return str(USER_ID_BASE + int(address[1:6]))


# -- Zitadel ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZitadelState:
    """The project's roles and grants, canonical: what a run leaves in the fake."""

    roles: tuple[tuple[str, str, str], ...]
    grants: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, fake: FakeZitadel) -> ZitadelState:
        return cls(
            tuple(sorted((r["key"], r["displayName"], r["group"]) for r in fake.roles(PROJECT))),
            tuple(sorted((g["userId"], tuple(sorted(g["roleKeys"]))) for g in fake.grants(PROJECT))),
        )

    def duplicate_grants(self) -> list[str]:
        return sorted(user for user, n in Counter(u for u, _ in self.grants).items() if n > 1)

    def difference(self, other: ZitadelState) -> str:
        roles = set(self.roles) ^ set(other.roles)
        grants = Counter(self.grants)
        grants.subtract(Counter(other.grants))
        moved = {k: v for k, v in grants.items() if v}
        return f"{len(roles)} role(s) and {len(moved)} grant(s) differ, e.g. {sorted(moved.items())[:3]}"


def start_fake(shape: Shape, seed: ZitadelState | None = None) -> FakeZitadel:
    """A started fake Zitadel with the project, every person of either version and, when
    given, the roles and grants of `seed` (the old state)."""
    fake = FakeZitadel(org_id=ORG).start()
    fake.add_project(PROJECT, ORG)
    fake.add_pat(PAT)
    for address in everyone(shape):
        fake.add_user(address, user_id=user_id(address), org_id=ORG)
    if seed is not None:
        for key, name, group in seed.roles:
            fake.add_role(PROJECT, key, name, group)
        for user, keys in seed.grants:
            fake.add_grant(user, PROJECT, list(keys), org_id=ORG)
    return fake


# -- databases --------------------------------------------------------------------------------


def server_url(url: str) -> str:
    """The psycopg spelling of a server URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def database_url(server: str, name: str) -> str:
    return make_url(normalise_database_url(server)).set(database=name).render_as_string(hide_password=False)


def database_name(url: str) -> str:
    return make_url(normalise_database_url(url)).database or ""


def create_database(server: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(server_url(server), autocommit=True) as admin:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        for attempt in range(50):
            try:
                admin.execute(statement)
                break
            except psycopg.errors.ObjectInUse:
                # "source database is being accessed by other users": a session of ours is
                # still closing.
                if attempt == 49:
                    raise
                time.sleep(0.1)
    return database_url(server, name)


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(server_url(server), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def other_sessions(server: str, name: str, ours: tuple[int, ...] = ()) -> list[tuple[int, str]]:
    """Client backends connected to database `name`, but for the pids `ours`."""
    with psycopg.connect(server_url(server), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid, coalesce(application_name, '') FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            (name,),
        ).fetchall()
    return [row for row in rows if row[0] not in ours]


def advisory_locks(server: str, name: str) -> int:
    with psycopg.connect(server_url(server), autocommit=True) as admin:
        return admin.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
            (name,),
        ).fetchone()[0]


RUNTIME_TABLES = frozenset(t.name for t in vars(runtime).values() if isinstance(t, sa.Table))
"""Runtime tables (audit, apply runs, journal, locks, ledger, counters, keys): not config."""
CONFIG_TABLES = tuple(t for t in metadata.sorted_tables if t.name not in RUNTIME_TABLES)


@dataclass(frozen=True)
class Fingerprint:
    """Every configuration row as a canonical tuple, per table: all columns but the primary
    key, timestamps and ciphertexts (random per write); an id pointing at another row is
    replaced by that row's natural key (its first unique constraint, resolved likewise)."""

    tables: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def rows(self) -> int:
        return sum(len(rows) for _, rows in self.tables)

    def compare(self, old: Fingerprint, new: Fingerprint) -> str:
        """'old', 'new' or 'mixed'."""
        if self == old:
            return "old"
        if self == new:
            return "new"
        return "mixed"

    def explain(self, old: Fingerprint, new: Fingerprint) -> str:
        """Which tables (of those old and new differ in) look old, which new, which neither."""
        mine, before, after = dict(self.tables), dict(old.tables), dict(new.tables)
        parts = []
        for name in mine:
            if mine[name] == before[name] == after[name]:
                continue
            look = "old" if mine[name] == before[name] else "new" if mine[name] == after[name] else "neither"
            parts.append(f"{name}={look}")
        return ", ".join(parts)


def _canonical(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _natural_key(table: sa.Table) -> list[str]:
    unique = [c for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    return [c.name for c in unique[0].columns] if unique else [c.name for c in table.columns if not c.primary_key]


def fingerprint(url: str) -> Fingerprint:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            keys: dict[uuid.UUID, Any] = {}
            tables = []
            for table in CONFIG_TABLES:  # parents first
                references = {fk.parent.name for fk in table.foreign_keys}
                kept = [c.name for c in table.columns if not c.primary_key and not isinstance(c.type, (sa.DateTime, cockpit_tables.UtcDateTime)) and not c.name.endswith("_encrypted")]
                natural = _natural_key(table)
                rows = []
                for row in connection.execute(sa.select(table)).mappings():
                    values = {n: keys.get(row[n], f"dangling {row[n]}") if n in references else _canonical(row[n]) for n in kept}
                    keys[row["id"]] = [table.name, *(values[n] for n in natural)]
                    rows.append(json.dumps([values[n] for n in kept]))
                tables.append((table.name, tuple(sorted(rows))))
            return Fingerprint(tuple(tables))
    finally:
        engine.dispose()


def query(url: str, text: str, **params: Any) -> list[Any]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(text), params).all())
    finally:
        engine.dispose()


# -- the CLI in a subprocess --------------------------------------------------------------------


def environment(url: str, fake: FakeZitadel | None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ZITADEL_", "OPENOBSERVE_", "COCKPIT_", "DATABASE_URL"))}
    environ.update(SECRETS, DATABASE_URL=url, COCKPIT_SECRET_KEY=SECRET_KEY, COCKPIT_ACTOR="crash-trials")
    if fake is not None:
        environ.update(ZITADEL_ISSUER_URL=fake.url, ZITADEL_MGMT_API_TOKEN=PAT)
    return environ


def cockpit(*args: str) -> list[str]:
    return [sys.executable, "-m", "cockpit.cli", *args]


def apply_command(tenant: Path, lock_timeout: float = 20) -> list[str]:
    return cockpit("apply", str(tenant), "--auto-approve", "--allow-delete", "--lock-timeout", str(lock_timeout))


@dataclass
class Finished:
    code: int
    output: str
    seconds: float


def run(command: list[str], environ: dict[str, str], cwd: Path, timeout: float = 300) -> Finished:
    """Run the CLI to its end; one that hangs (waits for a lock forever) is a result, not an
    exception: exit code -9 and a note."""
    started = time.monotonic()
    try:
        done = subprocess.run(command, env=environ, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = "".join(part.decode(errors="replace") if isinstance(part, bytes) else part for part in (exc.stdout or "", exc.stderr or ""))[-6000:]
        return Finished(-9, f"{output}\n(killed: still running after {timeout:.0f} s)", time.monotonic() - started)
    return Finished(done.returncode, done.stdout[-3000:] + done.stderr[-3000:], time.monotonic() - started)


# -- kill points ------------------------------------------------------------------------------

GATE_KEY = 0x0063_7261_7368_6761
"""The advisory lock a gate trigger waits for while the trial holds it."""


@dataclass(frozen=True)
class KillPoint:
    """Where to send SIGKILL.

    - ``uniform``: at `fraction` of an uninterrupted run's duration after launch (a random
      point anywhere: planning, transaction, Zitadel, re-plan, or after the end).
    - ``statement``: inside the DB transaction, at the first statement that writes `table`:
      a trigger there waits for an advisory lock the trial holds, so the apply is stopped
      with every earlier write of its transaction done, and killed there.
    - ``run_end``: just after the commit, when the run's end is being recorded (apply_runs),
      before any Zitadel step ran.
    - ``zitadel``: in the Zitadel phase, when the fake has received `fraction` of the steps
      an uninterrupted apply sends it (at least one).
    """

    aim: str
    fraction: float = 0.0
    table: str | None = None
    probe: bool = False
    """With a gate: before opening it, check that another apply times out on the locks the
    killed one's session still holds, naming the killed run."""
    revert: bool = False
    """The next apply is of the old tenant (the change reverted after the crash): it must
    leave exactly the old state, in the database and in Zitadel."""

    def label(self) -> str:
        return (f"{self.aim}:{self.table}" if self.table else self.aim) + (" +revert" if self.revert else "")


def _is_step(method: str, path: str) -> bool:
    """A Zitadel write of a journal step (a role or grant added, changed or removed)."""
    return method in ("POST", "PUT", "DELETE") and ("/grants" in path or "/roles" in path) and not path.endswith("_search")


class Gate:
    """A statement-level trigger on `table` that waits for the advisory lock `GATE_KEY`, which
    this gate's own session holds from creation until `open()`; `blocked()` says an apply is
    waiting in it. Test instrumentation of a throwaway trial database, removed before the
    next apply."""

    def __init__(self, url: str, table: str, events: str) -> None:
        self.url = server_url(url)
        self.table = table
        self.holder = psycopg.connect(self.url, autocommit=True)
        self.holder.execute(
            f"CREATE FUNCTION crash_gate() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_advisory_xact_lock({GATE_KEY}); RETURN NULL; END $$"
        )
        self.holder.execute(
            sql.SQL("CREATE TRIGGER crash_gate AFTER {} ON {} FOR EACH STATEMENT EXECUTE FUNCTION crash_gate()").format(
                sql.SQL(events), sql.Identifier(table)
            )
        )
        self.holder.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))

    def blocked(self) -> bool:
        return bool(self.holder.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()[0])

    def open(self) -> None:
        self.holder.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))

    def remove(self) -> None:
        """Drop the trigger (once the killed apply's session is gone) and disconnect."""
        self.holder.execute(sql.SQL("DROP TRIGGER crash_gate ON {}").format(sql.Identifier(self.table)))
        self.holder.execute("DROP FUNCTION crash_gate()")
        self.holder.close()


# -- calibration and trials -------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """An uninterrupted apply of old → new, in seconds from launch."""

    run_start: float
    """The run row is committed; the DB transaction starts."""
    commit: float
    """The transaction has committed (the run's end is recorded right after)."""
    zitadel_end: float
    """The last Zitadel step is marked done (= commit without Zitadel)."""
    end: float
    changes: int
    zitadel_steps: int


@dataclass
class TrialResult:
    index: int
    zitadel: bool
    aim: str
    kill_after: float = 0.0
    phase: str = ""
    """planning | transaction | zitadel | after_commit | completed"""
    state: str = ""
    """old | new | mixed (what the database held right after the kill)"""
    converged: bool = False
    problems: list[str] = field(default_factory=list)
    pending_steps: int = 0
    """Zitadel steps the killed apply left in the journal."""
    stale_running_runs: int = 0
    """apply_runs rows still 'running' after the next apply (the killed run's)."""
    lock_probe_seconds: float = 0.0
    """How long the probing apply took to give up (see `KillPoint.probe`), 0 if none ran."""
    sessions_gone_after: float = 0.0
    """Seconds from the kill (or the gate's opening) until the apply's sessions were gone."""
    converge_seconds: float = 0.0
    seconds: float = 0.0


class Lab:
    """A template database with the old tenant applied, references for old and new, and the
    means to run trials; `close()` drops every database it made.

    `template`: an existing empty database to build the template in (the CI slice passes the
    one its fixture made); otherwise one is created.
    """

    def __init__(
        self,
        server: str,
        shape: Shape,
        workdir: Path,
        *,
        zitadel_delay: float = 0.01,
        template: str | None = None,
        check_plan: bool = True,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.server = server_url(server)
        self.shape = shape
        self.workdir = workdir
        self.zitadel_delay = zitadel_delay
        self.check_plan = check_plan
        self.log = log
        self.prefix = f"cockpit_crash_{uuid.uuid4().hex[:6]}"
        self.template = template
        self.own_template = template is None
        self.databases: list[str] = []
        self.old_tenant = write_tenant(workdir / "old", shape, "old")
        self.new_tenant = write_tenant(workdir / "new", shape, "new")
        self.old: Fingerprint | None = None
        self.new: Fingerprint | None = None
        self.old_zitadel: ZitadelState | None = None
        self.new_zitadel: ZitadelState | None = None
        self.timelines: dict[bool, Timeline] = {}
        self.template_runs: set[uuid.UUID] = set()

    # -- setup --

    def prepare(self) -> None:
        """Apply the old tenant into the template, then time an uninterrupted old → new apply
        (with Zitadel), which also gives the new references."""
        if self.template is None:
            self.template = f"{self.prefix}_template"
            create_database(self.server, self.template)
            self.databases.append(self.template)
        url = database_url(self.server, self.template)
        upgrade(url)
        fake = start_fake(self.shape)
        try:
            first = run(apply_command(self.old_tenant), environment(url, fake), self.workdir)
            if first.code != 0:
                raise RuntimeError(f"applying the old tenant failed:\n{first.output}")
            self.old_zitadel = ZitadelState.of(fake)
        finally:
            fake.stop()
        self.old = fingerprint(url)
        self.template_runs = {r[0] for r in query(url, "SELECT id FROM apply_runs")}
        self.log(f"old tenant: {self.old.rows} configuration rows, {len(self.old_zitadel.grants)} Zitadel grants (applied in {first.seconds:.1f} s)")
        self.timelines[True] = self._calibrate(zitadel=True)

    @property
    def timeline(self) -> Timeline | None:
        """The uninterrupted run with Zitadel (the first one measured)."""
        return self.timelines.get(True)

    def timeline_for(self, zitadel: bool) -> Timeline:
        """The uninterrupted run with or without Zitadel, measured on first use."""
        if zitadel not in self.timelines:
            self.timelines[zitadel] = self._calibrate(zitadel=zitadel)
        return self.timelines[zitadel]

    def _calibrate(self, *, zitadel: bool) -> Timeline:
        """Time an uninterrupted old → new apply; the first one defines the new references,
        a later one must leave the same database."""
        name, url = self._new_database(f"calibrate_{'z' if zitadel else 'db'}")
        fake = start_fake(self.shape, self.old_zitadel) if zitadel else None
        try:
            if fake is not None:
                fake.delay = self.zitadel_delay
            launched = time.time()
            finished = run(apply_command(self.new_tenant), environment(url, fake), self.workdir)
            end = time.time() - launched
            if finished.code != 0 or "Re-plan: no changes." not in finished.output:
                raise RuntimeError(f"the uninterrupted apply of the new tenant failed:\n{finished.output}")
            state = fingerprint(url)
            if self.new is None:
                self.new = state
            elif state != self.new:
                raise RuntimeError(f"two uninterrupted applies left different databases: {state.explain(self.old, self.new)}")
            if fake is not None:
                self.new_zitadel = ZitadelState.of(fake)
                fake.delay = 0
            if self.new == self.old:
                raise RuntimeError("the new tenant does not change the database")
            (run_id, started, ended), = [r for r in query(url, "SELECT id, started_at, finished_at FROM apply_runs") if r[0] not in self.template_runs]
            last_step, steps = query(url, "SELECT max(updated_at), count(*) FROM apply_journal WHERE run_id = :run", run=run_id)[0]
            changes = query(url, "SELECT count(*) FROM audit_events WHERE apply_run_id = :run", run=run_id)[0][0]
        finally:
            if fake is not None:
                fake.stop()
            self._drop(name)
        zitadel_end = (last_step or ended).timestamp() - launched
        timeline = Timeline(started.timestamp() - launched, ended.timestamp() - launched, zitadel_end, end, changes, steps)
        self.log(
            f"uninterrupted old → new apply {'with' if zitadel else 'without'} Zitadel: {timeline.end:.2f} s = planning {timeline.run_start:.2f} s, "
            f"DB transaction {timeline.commit - timeline.run_start:.2f} s ({changes} changes), "
            + (f"Zitadel {timeline.zitadel_end - timeline.commit:.2f} s ({steps} steps, fake delay {self.zitadel_delay * 1000:.0f} ms), " if zitadel else "")
            + f"re-plan {timeline.end - timeline.zitadel_end:.2f} s; new state: {self.new.rows} rows"
            + (f", {len(self.new_zitadel.grants)} Zitadel grants" if zitadel and self.new_zitadel else "")
        )
        return timeline

    def written_tables(self) -> list[str]:
        """Configuration tables the old → new apply writes (their rows differ)."""
        assert self.old and self.new
        before, after = dict(self.old.tables), dict(self.new.tables)
        return sorted(name for name in before if before[name] != after[name])

    def _new_database(self, label: str) -> tuple[str, str]:
        name = f"{self.prefix}_{label}"
        url = create_database(self.server, name, template=self.template)
        self.databases.append(name)
        return name, url

    def _drop(self, name: str) -> None:
        drop_database(self.server, name)
        if name in self.databases:
            self.databases.remove(name)

    def close(self) -> None:
        for name in list(self.databases):
            if name == self.template and not self.own_template:
                continue
            self._drop(name)

    # -- trials --

    def kill_points(self, rng: random.Random, count: int, aims: list[str], *, probe: bool = True, revert: bool = True) -> Iterator[tuple[bool, KillPoint]]:
        """`count` (with Zitadel?, kill point) pairs, cycling through `aims`. Zitadel is on for
        a random half of the trials (always when aiming at its phase); a statement gate sits
        on a random table the apply writes (or the audit events, written last, or the journal)
        and, with `probe`, checks that the killed run's locks time out (`KillPoint.probe`);
        with `revert`, half of the kills aimed after the commit are followed by an apply of
        the old tenant (`KillPoint.revert`)."""
        tables = self.written_tables()
        for index in range(count):
            aim = aims[index % len(aims)]
            zitadel = aim in ("zitadel", "run_end") or rng.random() < 0.5
            table = None
            if aim == "statement":
                table = rng.choice(tables + ["audit_events"] + (["apply_journal"] if zitadel else []))
            back = revert and aim in ("zitadel", "run_end") and rng.random() < 0.5
            yield zitadel, KillPoint(aim, rng.random(), table, probe=probe and aim == "statement", revert=back)

    def trial(self, index: int, zitadel: bool, kill: KillPoint) -> TrialResult:
        started = time.monotonic()
        name, url = self._new_database(f"t{index}")
        fake = start_fake(self.shape, self.old_zitadel) if zitadel else None
        try:
            result = self._trial(index, name, url, fake, kill)
        finally:
            if fake is not None:
                fake.stop()
            self._drop(name)
        result.seconds = round(time.monotonic() - started, 2)
        return result

    def _trial(self, index: int, name: str, url: str, fake: FakeZitadel | None, kill: KillPoint) -> TrialResult:
        assert self.old and self.new
        result = TrialResult(index, fake is not None, kill.label())
        problems = result.problems
        environ = environment(url, fake)
        gate = None
        if kill.aim == "statement":
            assert kill.table
            gate = Gate(url, kill.table, "INSERT" if kill.table in RUNTIME_TABLES else "INSERT OR UPDATE OR DELETE")
        elif kill.aim == "run_end":
            gate = Gate(url, "apply_runs", "UPDATE")
        if fake is not None:
            fake.delay = self.zitadel_delay
        try:
            completed, returncode, result.kill_after = self._run_and_kill(environ, fake, kill, gate)
            runs = [r[0] for r in query(url, "SELECT id FROM apply_runs") if r[0] not in self.template_runs]
            if kill.probe and gate is not None and not completed and runs:
                self._probe_lock(result, environ, runs[0])
        finally:
            if gate is not None:
                gate.open()
        if completed and returncode != 0:
            problems.append(f"the apply exited {returncode} before the kill")
        ours = (gate.holder.info.backend_pid,) if gate is not None else ()
        killed = time.monotonic()
        deadline = killed + 15
        while other_sessions(self.server, name, ours) and time.monotonic() < deadline:
            time.sleep(0.01)
        result.sessions_gone_after = round(time.monotonic() - killed, 3)
        if other_sessions(self.server, name, ours):
            problems.append(f"sessions of the killed apply still open after 15 s: {other_sessions(self.server, name, ours)}")
        if gate is not None:
            gate.remove()
        if fake is not None:
            time.sleep(self.zitadel_delay * 2 + 0.05)  # a request in flight lands in the fake
            fake.delay = 0
        locks = advisory_locks(self.server, name)
        if locks:
            problems.append(f"{locks} advisory lock(s) outlive the killed apply")

        state = fingerprint(url)
        result.state = state.compare(self.old, self.new)
        if result.state == "mixed":
            problems.append(f"MIXED state after the kill: {state.explain(self.old, self.new)}")
        result.pending_steps = query(url, "SELECT count(*) FROM apply_journal WHERE status <> 'done'")[0][0]
        if completed:
            result.phase = "completed"
            if result.state != "new":
                problems.append(f"the apply finished but the database holds the {result.state} state")
        elif result.state == "old":
            result.phase = "transaction" if runs else "planning"
        elif result.state == "new":
            result.phase = "zitadel" if result.pending_steps else "after_commit"
        else:
            result.phase = "transaction"
        self._converge(result, url, environ, fake, revert=kill.revert)
        return result

    def _probe_lock(self, result: TrialResult, environ: dict[str, str], killed_run: uuid.UUID) -> None:
        """While the killed apply's session still holds its locks (stuck in the gate, as a
        session whose client died mid-statement can be), the next apply must give up after its
        --lock-timeout, naming the killed run, instead of waiting forever."""
        probe = run(apply_command(self.new_tenant, lock_timeout=1), environ, self.workdir, timeout=120)
        result.lock_probe_seconds = round(probe.seconds, 2)
        if probe.code != 1 or f"is locked by apply run {killed_run}" not in probe.output:
            result.problems.append(f"an apply during the killed one's lock should time out naming run {killed_run}; it exited {probe.code}: {probe.output[-800:]}")

    def _run_and_kill(self, environ: dict[str, str], fake: FakeZitadel | None, kill: KillPoint, gate: Gate | None) -> tuple[bool, int, float]:
        """Start the apply, kill it at `kill`; (finished by itself?, exit code, seconds)."""
        timeline = self.timeline_for(fake is not None)
        writes_before = len(fake.requests) if fake is not None else 0
        launched = time.monotonic()
        process = subprocess.Popen(
            apply_command(self.new_tenant), env=environ, cwd=self.workdir,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            limit = launched + timeline.end * 4 + 60
            if kill.aim == "uniform":
                limit = launched + kill.fraction * timeline.end
                while process.poll() is None and time.monotonic() < limit:
                    time.sleep(min(0.005, max(0.0, limit - time.monotonic())))
            elif gate is not None:
                while process.poll() is None and time.monotonic() < limit and not gate.blocked():
                    time.sleep(0.01)
            elif kill.aim == "zitadel":
                assert fake is not None
                # After a number of Zitadel writes, not a time: the count of steps is fixed,
                # the speed of the machine is not.
                writes = 1 + int(kill.fraction * max(0, timeline.zitadel_steps - 1))
                while process.poll() is None and time.monotonic() < limit:
                    if sum(_is_step(m, p) for m, p, _ in fake.requests[writes_before:]) >= writes:
                        break
                    time.sleep(0.002)
            else:
                raise ValueError(f"unknown aim {kill.aim!r}")
            kill_after = time.monotonic() - launched
            completed = process.poll() is not None
        finally:
            if process.poll() is None:  # the kill, or leaving early (an error, SIGTERM)
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return completed, process.returncode, round(kill_after, 3)

    def _converge(self, result: TrialResult, url: str, environ: dict[str, str], fake: FakeZitadel | None, *, revert: bool = False) -> None:
        """The next apply, and what it must leave: exactly the new state, here and in Zitadel
        (with `revert`, the next apply is of the old tenant, and the old state is expected)."""
        problems = result.problems
        tenant, wanted, wanted_zitadel, which = (
            (self.old_tenant, self.old, self.old_zitadel, "old") if revert else (self.new_tenant, self.new, self.new_zitadel, "new")
        )
        converge = run(apply_command(tenant), environ, self.workdir)
        result.converge_seconds = round(converge.seconds, 2)
        if converge.code != 0:
            problems.append(f"the next apply exited {converge.code}: {converge.output[-1500:]}")
        elif "Re-plan: no changes." not in converge.output and "Nothing to apply." not in converge.output:
            problems.append(f"the next apply did not end with an empty re-plan: {converge.output[-1500:]}")
        if "is locked by" in converge.output:
            problems.append("the next apply waited for a lock")
        after = fingerprint(url)
        if after != wanted:
            problems.append(f"after the next apply the database is not the {which} state: {after.explain(self.old, self.new) or after.compare(self.old, self.new)}")
        waiting = query(url, "SELECT count(*) FROM apply_journal WHERE status <> 'done'")[0][0]
        if waiting:
            problems.append(f"{waiting} Zitadel step(s) still not done after the next apply")
        if fake is not None:
            assert wanted_zitadel is not None
            now = ZitadelState.of(fake)
            if now.duplicate_grants():
                problems.append(f"duplicate Zitadel grants for {now.duplicate_grants()[:5]}")
            if now != wanted_zitadel:
                problems.append(f"Zitadel differs from what an uninterrupted apply of the {which} tenant leaves: {now.difference(wanted_zitadel)}")
        if self.check_plan:
            plan = run(cockpit("plan", str(tenant), "--detailed-exitcode"), environ, self.workdir)
            if plan.code != 0:
                problems.append(f"plan after the next apply exited {plan.code}: {plan.output[-1500:]}")
        result.stale_running_runs = query(url, "SELECT count(*) FROM apply_runs WHERE status = 'running'")[0][0]
        result.converged = not [p for p in problems if not p.startswith("MIXED")]


PHASES = ("planning", "transaction", "zitadel", "after_commit", "completed")


def summarise(results: list[TrialResult], seconds: float) -> dict[str, Any]:
    """The figures. Top level, for a one-table runner: `trials`; `db_phase`, kills inside the
    DB transaction (the run recorded, the database still old); `zitadel_phase`, kills after
    the commit with Zitadel steps pending; `completed`, applies that finished before the kill;
    `mixed` and `not_converged`, which must be 0; `seconds`. Under `detail`: the other phases
    (`planning` before the transaction, `after_commit` in the re-plan), the same counts for
    the uniformly drawn kills alone, and timings."""
    phases = Counter(r.phase for r in results)
    uniform = Counter(r.phase for r in results if r.aim.split(" ")[0] == "uniform")
    return {
        "trials": len(results),
        "db_phase": phases["transaction"],
        "zitadel_phase": phases["zitadel"],
        "completed": phases["completed"],
        "mixed": sum(r.state == "mixed" for r in results),
        "not_converged": sum(not r.converged for r in results),
        "seconds": round(seconds, 1),
        "detail": {
            "planning": phases["planning"],
            "after_commit": phases["after_commit"],
            "with_zitadel": sum(r.zitadel for r in results),
            "aims": dict(Counter(r.aim.split(":")[0].split(" ")[0] for r in results)),
            "reverted": sum(r.aim.endswith("+revert") for r in results),
            "uniform_phases": {p: uniform[p] for p in PHASES},
            "stale_running_runs": max((r.stale_running_runs for r in results), default=0),
            "seconds_per_trial": round(sum(r.seconds for r in results) / len(results), 2) if results else 0.0,
            "next_apply_seconds_max": max((r.converge_seconds for r in results), default=0.0),
            "sessions_gone_seconds_max": max((r.sessions_gone_after for r in results), default=0.0),
            "lock_probes": sum(r.lock_probe_seconds > 0 for r in results),
            "lock_probe_seconds_max": max((r.lock_probe_seconds for r in results), default=0.0),
        },
    }


def describe(result: TrialResult) -> str:
    line = (
        f"trial {result.index:3d}: {'zitadel' if result.zitadel else 'db only':7s} {result.aim:32s} "
        f"kill at {result.kill_after:6.2f} s -> {result.phase:12s} {result.state:5s} "
        f"pending {result.pending_steps:4d}  next apply {result.converge_seconds:5.2f} s  "
        + (f"lock probe {result.lock_probe_seconds:.1f} s  " if result.lock_probe_seconds else "")
        + ("ok" if result.converged and result.state != "mixed" else "FAILED")
    )
    return line + "".join(f"\n    {p}" for p in result.problems)
