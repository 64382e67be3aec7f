"""The world of the read API's list, single-object and effective tests: two accounts applied.

`open_api` applies examples/acme (its secret files replaced by canaries) and `globex`, a second
account that reuses acme's names and has more than 1,000 users, then yields an `Api`: a test
client holding the master key, with helpers that read whole lists and single items.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from cockpit.server.app import create_app
from cockpit.store.engine import create_engine_for
from harness.cockpit import EXAMPLES, Cockpit

MASTER_KEY = "mk"
CANARY = "canary"
BIG_DIRECTORY = 1005
"""Extra copilot users of the second account, to see the 1,000 cap of `limit`."""

GLOBEX = """\
apiVersion: cockpit/v1
kind: Account
name: globex
email_domain: globex.com
admins: [{email: boss@globex.com}]
sso: {provider: oidc, enabled: true, settings: {client_id: globex-app, client_secret: "${file:secrets/globex-token}"}}
feature_pack: {features: [create_agents]}
---
apiVersion: cockpit/v1
kind: Directory
account: globex
domain: copilot
users: [{email: hank@globex.com, display_name: Hank}, {email: alice.nguyen@globex.com}]
orgs: [{name: research, teams: [{name: ml, members: [{user: hank@globex.com}]}]}]
---
apiVersion: cockpit/v1
kind: Directory
account: globex
domain: console
users: [{email: hank@globex.com}]
orgs: [{name: ops, teams: [{name: sre, members: [{user: hank@globex.com}]}]}]
---
apiVersion: cockpit/v1
kind: ModelAccess
account: globex
domain: copilot
grants: [{model: gpt-4o, scope: org:research}]
---
apiVersion: cockpit/v1
kind: Features
account: globex
domain: copilot
entitlements: [{feature: create_agents, scope: org:research}]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: globex
code: pii-strict
name: Globex PII
patterns: [{name: globex-id, regex: 'GX-\\d+', type: block}]
assign: [account]
---
apiVersion: cockpit/v1
kind: Agent
account: globex
name: helpdesk
definition: {system_prompt: Globex only}
guardrails: [pii-strict]
grants: [team:research/ml]
---
apiVersion: cockpit/v1
kind: Connection
account: globex
name: globex-jira
type: openapi
secret: {token: "${file:secrets/globex-token}"}
grants: [{scope: org:research}]
---
apiVersion: cockpit/v1
kind: MarketplaceListing
account: globex
entity: agent:helpdesk
title: Globex helpdesk
"""


def big_directory(count: int) -> str:
    users = "\n".join(f"  - {{email: user{i:04d}@globex.com}}" for i in range(count))
    return f"apiVersion: cockpit/v1\nkind: Directory\naccount: globex\ndomain: copilot\nusers:\n{users}\n"


@dataclass
class Api:
    client: TestClient
    cockpit: Cockpit
    engine: Engine

    def get(self, path: str, account: str | None = "acme", token: str | None = MASTER_KEY, **params: Any):
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if account is not None:
            headers["X-Account-Id"] = account
        return self.client.get(path, headers=headers, params=params or None)

    def ok(self, path: str, account: str | None = "acme", **params: Any) -> dict[str, Any]:
        response = self.get(path, account, **params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def every(self, path: str, account: str = "acme", **params: Any) -> list[dict[str, Any]]:
        """All items of a paginated list (one page of 1,000)."""
        body = self.ok(path, account, limit=1000, **params)
        assert body["total"] == len(body["items"])
        return body["items"]

    def one(self, path: str, account: str = "acme", **match: Any) -> dict[str, Any]:
        found = [i for i in self.every(path, account) if all(i.get(k) == v for k, v in match.items())]
        assert len(found) == 1, (path, match, found)
        return found[0]


@contextmanager
def open_api(cockpit: Cockpit) -> Iterator[Api]:
    """examples/acme with canary secrets, and a second account (globex) that reuses acme's
    names (an org `research`, a preset `pii-strict`, an agent `helpdesk`) and has 1,000+ users."""
    shutil.rmtree(cockpit.tenant)
    shutil.copytree(EXAMPLES / "acme", cockpit.tenant)
    for secret in (cockpit.tenant / "secrets").iterdir():
        secret.write_text(f"{CANARY}-{secret.name}-0000\n")
    (cockpit.tenant / "secrets" / "globex-token").write_text(f"{CANARY}-globex-token-0000\n")
    cockpit.write(GLOBEX, "globex.yaml")
    cockpit.write(big_directory(BIG_DIRECTORY), "globex-people.yaml")
    applied = cockpit.apply()
    assert applied.exit_code == 0, applied.output
    engine = create_engine_for(cockpit.url)
    try:
        yield Api(TestClient(create_app(engine, {"COCKPIT_MASTER_KEY": MASTER_KEY})), cockpit, engine)
    finally:
        engine.dispose()
