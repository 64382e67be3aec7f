"""The world of the read API's budget, cost and audit tests: two accounts in two workspaces.

`Api` applies examples/acme and `globex` (another workspace, its own budget plan), opens a test
client with the master key, and writes usage ledger rows directly; `ACME`, `GLOBEX` and `SUPER`
are the request headers of an acme caller, a globex caller and a super admin.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from cockpit.server.app import create_app
from cockpit.store.engine import create_engine_for
from cockpit.store.tables import usage_ledger
from harness.cockpit import EXAMPLES, Cockpit

MASTER_KEY = "test-master-key-budgets"
ACME = {"Authorization": f"Bearer {MASTER_KEY}", "X-Account-Id": "acme"}
GLOBEX = {"Authorization": f"Bearer {MASTER_KEY}", "X-Account-Id": "globex"}
SUPER = {"Authorization": f"Bearer {MASTER_KEY}"}

GLOBEX_CONFIG = """\
apiVersion: cockpit/v1
kind: Account
name: globex
email_domain: globex.com
allocation: {monthly_credits: 777, credit_factor: 2}
admins: [{email: boss@globex.com}]
---
apiVersion: cockpit/v1
kind: Directory
account: globex
domain: copilot
users: [{email: spy@globex.com, display_name: Spy}]
orgs:
  - name: research
    teams:
      - name: ml
        members: [{user: spy@globex.com}]
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: globex
name: globex-plan
cycle: quarterly
active: true
allocations: [{scope: org:research, credits: 500}, {scope: team:research/ml, credits: 100}]
"""


class Api:
    """acme and globex applied; a test client with the master key; SQL helpers."""

    def __init__(self, cockpit: Cockpit, tmp_path: Path) -> None:
        self.cockpit = cockpit
        shutil.rmtree(cockpit.tenant)
        shutil.copytree(EXAMPLES / "acme", cockpit.tenant)
        applied = cockpit.apply()
        assert applied.exit_code == 0, applied.output
        globex = tmp_path / "globex"
        globex.mkdir()
        (globex / "globex.yaml").write_text(GLOBEX_CONFIG)
        applied = cockpit.run("apply", str(globex), "--auto-approve", "--workspace", "other")
        assert applied.exit_code == 0, applied.output
        self.engine = create_engine_for(cockpit.url)
        self.client = TestClient(create_app(self.engine, {"COCKPIT_MASTER_KEY": MASTER_KEY}))
        self.acme = uuid.UUID(self.row_id("SELECT id FROM accounts WHERE name = 'acme'"))
        self.globex = uuid.UUID(self.row_id("SELECT id FROM accounts WHERE name = 'globex'"))

    def scalar(self, query: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(query), params).scalar()

    def row_id(self, query: str, **params: Any) -> str:
        with self.engine.connect() as connection:
            return str(uuid.UUID(str(connection.execute(sa.text(query), params).scalar())))

    def team_id(self, account: str, org: str, team: str) -> str:
        return self.row_id(
            "SELECT t.id FROM copilot_teams t JOIN copilot_orgs o ON t.org_id = o.id JOIN accounts a ON o.account_id = a.id "
            "WHERE a.name = :account AND o.name = :org AND t.name = :team",
            account=account, org=org, team=team,
        )

    def org_id(self, account: str, org: str, domain: str = "copilot") -> str:
        return self.row_id(
            f"SELECT o.id FROM {domain}_orgs o JOIN accounts a ON o.account_id = a.id WHERE a.name = :account AND o.name = :org",
            account=account, org=org,
        )

    def get(self, path: str, headers: dict[str, str] = ACME, **params: Any) -> Any:
        return self.client.get(path, headers=headers, params=params)

    def ok(self, path: str, headers: dict[str, str] = ACME, **params: Any) -> dict[str, Any]:
        response = self.get(path, headers, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def ledger(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as connection:
            blank = dict.fromkeys(("org_key", "team_key", "user_email", "agent_name", "model_name", "connection_name", "guardrail_code"))
            connection.execute(usage_ledger.insert(), [{"id": uuid.uuid4(), "domain": "copilot", **blank, **row} for row in rows])

    def close(self) -> None:
        self.client.close()
        self.engine.dispose()
