"""Two tenants for the read API's security tests, and the requests that probe every GET route.

`acme` is `examples/acme`; `globex` is a small tenant written here whose every name, email and
title is unique to it, so a response that shows any of them (or any id of a globex row) to a
caller of acme has leaked. `route_requests` turns the app's OpenAPI document into concrete
GET requests, filling path and query parameters with the ids and names of a tenant; routes
that other modules add later are covered without touching these tests.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa

from cockpit.store.tables import accounts, metadata

from harness.cockpit import EXAMPLES

GLOBEX = """\
apiVersion: cockpit/v1
kind: Account
name: globex
alias: Globex Corporation
description: Globex Corporation, Cypress Creek campus
email_domain: globex.test
admins:
  - {email: hank.scorpio@globex.test, role: account_admin}
  - {email: frank.grimes@globex.test, role: console_org_admin}
sso:
  provider: zitadel
  enabled: true
  settings: {issuer: "https://id.globex.test", client_id: "globex-client-77", client_secret: "${file:globex-secrets/sso-client-secret}"}
allocation: {monthly_credits: 7777, credit_factor: 1.5}
feature_pack: {features: [create_agents, image_generation, model_access]}
model_policy: {console: {allow: [gpt-4o], deny: []}, copilot: {allow: [], deny: []}}
zitadel: {project_id: "999000111", organization_id: "999000222", role_prefix: globex_}
---
apiVersion: cockpit/v1
kind: Directory
account: globex
domain: copilot
users:
  - {email: hank.scorpio@globex.test, display_name: Hank Scorpio}
  - {email: mindy.simmons@globex.test, display_name: Mindy Simmons}
  - {email: rudiger.lair@globex.test, display_name: Rudiger Lairmaster}
orgs:
  - name: hammock-division
    description: Globex hammock division
    admins: [mindy.simmons@globex.test]
    teams:
      - name: doomsday-device
        description: Globex doomsday device team
        members: [{user: mindy.simmons@globex.test, role: admin}, {user: rudiger.lair@globex.test}]
---
apiVersion: cockpit/v1
kind: Directory
account: globex
domain: console
users:
  - {email: frank.grimes@globex.test, display_name: Frank Grimes}
  - {email: rudiger.lair@globex.test, display_name: Rudiger Lairmaster}
orgs:
  - name: cypress-creek-ops
    teams: [{name: volcano-sre, members: [{user: rudiger.lair@globex.test, role: admin}]}]
---
apiVersion: cockpit/v1
kind: ModelAccess
account: globex
domain: copilot
grants:
  - {model: gpt-4o, scope: org:hammock-division}
  - {model: gpt-4o-mini, scope: user:rudiger.lair@globex.test, access: deny}
---
apiVersion: cockpit/v1
kind: ModelAccess
account: globex
domain: console
grants:
  - {model: gpt-4o, scope: team:cypress-creek-ops/volcano-sre}
---
apiVersion: cockpit/v1
kind: Features
account: globex
domain: copilot
entitlements: [{feature: image_generation, scope: team:hammock-division/doomsday-device, config: {globex_quota: 31337}}]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: globex
code: globex-lair-guard
name: Globex lair guard
patterns: [{name: globex-doomsday-pattern, regex: 'doomsday-[0-9]+', type: block}]
assign: [account, org:hammock-division]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: globex
code: globex-console-guard
name: Globex console guard
domain: console
patterns: [{name: globex-console-pattern, regex: 'volcano-[0-9]+', type: detect}]
assign: [account]
---
apiVersion: cockpit/v1
kind: Agent
account: globex
name: volcano-lair-bot
description: Globex volcano lair assistant
definition: {system_prompt: "You serve Globex and Hank Scorpio", tools: []}
guardrails: [globex-lair-guard]
grants: [team:hammock-division/doomsday-device]
---
apiVersion: cockpit/v1
kind: Connection
account: globex
name: globex-crm
type: openapi
description: Globex customer records
config: {base_url: "https://crm.globex.test"}
secret: {token: "${file:globex-secrets/crm-token}"}
grants: [{scope: org:hammock-division}]
---
apiVersion: cockpit/v1
kind: MarketplaceListing
account: globex
entity: agent:volcano-lair-bot
title: Globex lair assistant
published: true
grants: [org:hammock-division]
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: globex
name: globex-fy26
allocations: [{scope: org:hammock-division, credits: 4242, overflow_cap: 42}]
"""

GLOBEX_SECRETS = {"sso-client-secret": "globex-sso-secret-value-5150", "crm-token": "globex-crm-token-value-8086"}

GLOBEX_WORDS = (
    "globex", "Hank Scorpio", "Mindy Simmons", "Rudiger", "Frank Grimes", "hammock-division",
    "doomsday", "cypress-creek", "volcano", "999000111", "999000222",
)
"""Strings that only globex's data holds (emails all contain 'globex')."""


def write_tenants(tenant: Path, *, secrets: dict[str, str] | None = None) -> None:
    """examples/acme plus globex into `tenant` (emptied first); `secrets` overrides the content
    of acme's secret files by name (a canary per file)."""
    shutil.rmtree(tenant, ignore_errors=True)
    shutil.copytree(EXAMPLES / "acme", tenant)
    for name, value in (secrets or {}).items():
        (tenant / "secrets" / name).write_text(value + "\n")
    (tenant / "globex.yaml").write_text(GLOBEX)
    (tenant / "globex-secrets").mkdir()
    for name, value in GLOBEX_SECRETS.items():
        (tenant / "globex-secrets" / name).write_text(value + "\n")


@dataclass
class TenantRows:
    """Every id, name and email stored for one account, for parameters and for leak scans."""

    account_id: uuid.UUID
    ids: set[str]
    ids_by_table: dict[str, list[str]]
    names_by_table: dict[str, list[str]]
    emails: set[str]


def tenant_rows(engine: sa.Engine, account: str) -> TenantRows:
    """Rows of `account` in every table with an `account_id`, and their children (by foreign
    key, to any depth)."""
    ids_by_table: dict[str, list[str]] = {}
    names_by_table: dict[str, list[str]] = {}
    emails: set[str] = set()
    with engine.connect() as connection:
        account_id = connection.execute(sa.select(accounts.c.id).where(accounts.c.name == account)).scalar_one()
        owned: dict[str, set[Any]] = {"accounts": {account_id}}
        changed = True
        while changed:
            changed = False
            for table in metadata.sorted_tables:
                if table.name == "accounts" or "id" not in table.c:
                    continue
                conditions = []
                if "account_id" in table.c:
                    conditions.append(table.c.account_id == account_id)
                for fk in table.foreign_keys:
                    parent = fk.column.table.name
                    if parent != "accounts" and owned.get(parent):
                        conditions.append(fk.parent.in_(owned[parent]))
                if not conditions:
                    continue
                rows = connection.execute(sa.select(table).where(sa.or_(*conditions))).mappings().all()
                found = {row["id"] for row in rows}
                if found - owned.get(table.name, set()):
                    owned[table.name] = owned.get(table.name, set()) | found
                    changed = True
                for row in rows:
                    for column in ("name", "code", "title", "email", "user_email"):
                        value = row.get(column)
                        if isinstance(value, str):
                            (emails.add(value) if "@" in value else names_by_table.setdefault(table.name, []).append(value))
        for table, found in owned.items():
            ids_by_table[table] = sorted(str(i) for i in found)
    ids = {i for found in ids_by_table.values() for i in found}
    return TenantRows(account_id, ids, ids_by_table, {k: sorted(set(v)) for k, v in names_by_table.items()}, emails)


def parameter_values(rows: TenantRows, account_name: str) -> dict[str, list[str]]:
    """Values to try per parameter stem (`agent_id` → `agent`): ids first, then names."""
    t = rows.ids_by_table
    n = rows.names_by_table
    copilot_user_emails = sorted(e for e in rows.emails if e)
    return {
        "account": [str(rows.account_id), account_name],
        "agent": t.get("agents", [])[:1] + n.get("agents", [])[:1],
        "connection": t.get("connections", [])[:1] + n.get("connections", [])[:1],
        "listing": t.get("marketplace_listings", [])[:1],
        "pattern": t.get("guardrail_patterns", [])[:1],
        "preset": t.get("guardrail_presets", [])[:1] + n.get("guardrail_presets", [])[:1],
        "plan": t.get("budget_plans", [])[:1] + n.get("budget_plans", [])[:1],
        "org": [x for x in (t.get("copilot_orgs", []) + t.get("console_orgs", [])) if x][:2] + [x for x in n.get("copilot_orgs", []) if x != "global"][:1],
        "team": t.get("copilot_teams", [])[:1] + t.get("console_teams", [])[:1],
        "user": t.get("copilot_users", [])[:1] + t.get("console_users", [])[:1] + copilot_user_emails[:1],
        "email": copilot_user_emails[:1],
        "actor": copilot_user_emails[:1],
        "scope": t.get("copilot_orgs", [])[:1],
        "apply_run": t.get("apply_runs", [])[:1],
        "title": n.get("marketplace_listings", [])[:1],
        "model_name": ["gpt-4o"],
        "model": ["gpt-4o"],
    }


FIXED = {"domain": "copilot", "scope_type": "org", "limit": None, "offset": None, "by": None, "since": None, "until": None}
"""Parameters with fixed values (None: leave out)."""


def _stem(name: str) -> str:
    return re.sub(r"_(id|name|code)$", "", name) if name not in ("model_name",) else name


def route_requests(spec: dict[str, Any], values: dict[str, list[str]], default: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(route, url path, query) for every GET operation: each candidate of each path parameter,
    once with no query and once with every query parameter filled in; `default` fills a
    parameter no stem knows."""
    for route, operations in spec["paths"].items():
        operation = operations.get("get")
        if operation is None:
            continue
        parameters = operation.get("parameters", [])
        path_params = [p["name"] for p in parameters if p["in"] == "path"]
        query_params = [p for p in parameters if p["in"] == "query"]
        query: dict[str, str] = {}
        for parameter in query_params:
            name = parameter["name"]
            if name in FIXED:
                if FIXED[name] is not None:
                    query[name] = FIXED[name]
                continue
            candidates = values.get(_stem(name)) or values.get(name) or []
            if candidates:
                query[name] = candidates[0]
            elif parameter.get("required"):
                query[name] = default
        for filled in _fill_path(route, path_params, values, default):
            yield route, filled, {}
            if query:
                yield route, filled, query
                if "domain" in query:
                    yield route, filled, {**query, "domain": "console"}


def _fill_path(route: str, names: list[str], values: dict[str, list[str]], default: str) -> Iterator[str]:
    if not names:
        yield route
        return
    first, rest = names[0], names[1:]
    for value in values.get(_stem(first)) or [default]:
        yield from _fill_path(route.replace("{" + first + "}", value), rest, values, default)
