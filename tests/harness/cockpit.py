"""The CLI run in a tenant directory against one database, and BASE, a tenant with every kind.

`Cockpit` sets the environment a tenant needs (database URL, secret key, the `${env:}` and
`${file:}` secrets BASE references) and invokes `cockpit` in-process with click's runner, so a
test reads its exit code and output. The `cockpit` fixture of `conftest.py` builds one on a
migrated database (SQLite and PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from cockpit.cli import main
from cockpit.store.engine import create_engine_for

REPOSITORY = Path(__file__).resolve().parents[2]
"""The root of the repository: `examples/`, `migrations/`, `schemas/` are found from here."""
EXAMPLES = REPOSITORY / "examples"
"""The example tenants of the repository (`examples/acme`, `examples/invalid`, ...)."""
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"

BASE = """\
apiVersion: cockpit/v1
kind: Account
name: acme
email_domain: acme.com
allocation: {monthly_credits: 1000, credit_factor: 1.5}
feature_pack: {features: [create_agents, image_generation]}
admins: [{email: admin@acme.com}]
---
apiVersion: cockpit/v1
kind: Model
name: gpt-4o
litellm: {model: openai/gpt-4o, api_key: "${env:TEST_OPENAI_KEY}"}
pricing: {input_per_million: 2.5, output_per_million: 10}
---
apiVersion: cockpit/v1
kind: Directory
account: acme
domain: copilot
users: [{email: alice@acme.com, display_name: Alice}, {email: bob@acme.com}]
orgs:
  - name: research
    admins: [alice@acme.com]
    teams:
      - name: ml
        members: [{user: alice@acme.com, role: admin}, {user: bob@acme.com}]
---
apiVersion: cockpit/v1
kind: Directory
account: acme
domain: console
users: [{email: carol@acme.com}]
orgs: [{name: ops, teams: [{name: sre, members: [{user: carol@acme.com}]}]}]
---
apiVersion: cockpit/v1
kind: ModelAccess
account: acme
domain: copilot
grants:
  - {model: gpt-4o, scope: org:research}
  - {model: gpt-4o, scope: user:bob@acme.com, access: deny}
---
apiVersion: cockpit/v1
kind: Features
account: acme
domain: copilot
entitlements: [{feature: image_generation, scope: team:research/ml, config: {size: 1024}}]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: acme
code: pii
name: PII
patterns: [{name: ssn, regex: '\\d{3}-\\d{2}-\\d{4}', type: block}]
assign: [account]
---
apiVersion: cockpit/v1
kind: Agent
account: acme
name: helpdesk
definition: {system_prompt: Be kind, tools: [search]}
guardrails: [pii]
grants: [team:research/ml]
---
apiVersion: cockpit/v1
kind: Connection
account: acme
name: github
type: composio
config: {auth_mode: api_key}
secret: {api_key: "${file:github.key}"}
grants: [{scope: org:research}]
---
apiVersion: cockpit/v1
kind: MarketplaceListing
account: acme
entity: agent:helpdesk
title: Helpdesk
grants: [org:research]
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: acme
name: q1
allocations: [{scope: org:research, credits: 600, overflow_cap: 50}]
distribute_equally: [{scopes: [team:research/ml], total_credits: 300}]
overrides: [{scope: team:research/ml, credits: 250, reason: launch}]
---
apiVersion: cockpit/v1
kind: RateLimits
account: acme
domain: copilot
limits:
  - {scope: account, per_user: true, rpm: 30, tpm: 60000}
  - {scope: team:research/ml, model: gpt-4o, rpm: 120}
---
apiVersion: cockpit/v1
kind: Model
name: gpt-4o-pair
deployments:
  - {name: eu, litellm: {model: azure/gpt-4o-eu, api_key: "${env:TEST_OPENAI_KEY}"}, weight: 3, rpm: 600}
  - {name: us, litellm: {model: openai/gpt-4o}}
fallbacks: [gpt-4o]
timeout_seconds: 30
pricing: {input_per_million: 2.5, output_per_million: 10}
"""


class Cockpit:
    """Runs the CLI in a tenant directory against one database."""

    def __init__(self, url: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.url = url
        self.root = root
        self.tenant = root / "tenant"
        self.tenant.mkdir()
        monkeypatch.chdir(root)
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("COCKPIT_SECRET_KEY", SECRET_KEY)
        monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-canary-openai-1111")
        (self.tenant / "github.key").write_text("ghp-canary-secret-2222\n")

    def write(self, text: str, name: str = "tenant.yaml") -> None:
        (self.tenant / name).write_text(text)

    def run(self, *args: str) -> Result:
        result = CliRunner().invoke(main, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def plan(self, *args: str) -> Result:
        return self.run("plan", str(self.tenant), "--detailed-exitcode", *args)

    def apply(self, *args: str) -> Result:
        return self.run("apply", str(self.tenant), "--auto-approve", *args)

    def scalar(self, sql: str):
        engine = create_engine_for(self.url)
        try:
            with engine.connect() as connection:
                return connection.execute(sa.text(sql)).scalar()
        finally:
            engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but the schema version): what "nothing was written" compares."""
    engine = create_engine_for(url)
    try:
        tables = sa.inspect(engine).get_table_names()
        with engine.connect() as connection:
            return {
                table: sorted((tuple(str(v) for v in row) for row in connection.execute(sa.text(f"SELECT * FROM {table}"))))
                for table in tables
                if table != "alembic_version"
            }
    finally:
        engine.dispose()
