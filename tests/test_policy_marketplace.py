"""Marketplace discover and the agents and connections a user may use: grants on the user,
their teams or their orgs, membership expanded from the copilot directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.config.validate import validate_path
from cockpit.policy.graph import AccountGraph, account_graph
from cockpit.policy.grants import usable_agent_names, usable_agents, usable_connection_names, usable_connections
from cockpit.policy.marketplace import discover, discoverable
from cockpit.resources.desired import desired_state

TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: t
---
apiVersion: cockpit/v1
kind: Directory
account: t
domain: copilot
users: [{email: ann@t.io}, {email: bob@t.io}, {email: cat@t.io}, {email: dan@t.io}, {email: eve@t.io}]
orgs:
  - name: r
    admins: [eve@t.io]
    teams:
      - {name: ml, members: [{user: ann@t.io}, {user: bob@t.io}]}
      - {name: nlp, members: [{user: bob@t.io}]}
  - name: s
    teams:
      - {name: emea, members: [{user: cat@t.io}]}
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: t
code: base
name: Baseline
---
apiVersion: cockpit/v1
kind: Agent
account: t
name: helper
guardrails: [base]
grants: [team:r/ml, user:dan@t.io]
---
apiVersion: cockpit/v1
kind: Agent
account: t
name: writer
guardrails: [base]
grants: [org:r]
---
apiVersion: cockpit/v1
kind: Agent
account: t
name: nobody
guardrails: [base]
---
apiVersion: cockpit/v1
kind: Connection
account: t
name: crm
type: openapi
grants: [{scope: org:s}, {scope: user:ann@t.io, can_manage: true}, {scope: team:r/ml}]
---
apiVersion: cockpit/v1
kind: MarketplaceListing
account: t
entity: agent:helper
title: Helper
---
apiVersion: cockpit/v1
kind: MarketplaceListing
account: t
entity: agent:writer
title: Writer
grants: [team:r/nlp, org:s]
---
apiVersion: cockpit/v1
kind: MarketplaceListing
account: t
entity: connection:crm
title: CRM
published: false
"""


@pytest.fixture
def graph(tmp_path: Path) -> AccountGraph:
    (tmp_path / "t.yaml").write_text(TENANT)
    result = validate_path(tmp_path)
    assert result.ok, [str(d) for d in result.diagnostics]
    return account_graph(desired_state(result.tenant, fingerprint=lambda *a: None), "t")


def test_discover_without_grants_is_the_whole_account(graph: AccountGraph) -> None:
    found = discover(graph, "dan@t.io")
    assert [(d.listing, d.mode, d.matched) for d in found] == [("agent:helper", "account", ())]
    assert "visible to the whole account" in found[0].why
    assert discover(graph, "not-in-directory@t.io")[0].listing == "agent:helper"


def test_discover_with_grants_needs_a_match_through_membership(graph: AccountGraph) -> None:
    bob = {d.listing: d for d in discover(graph, "bob@t.io")}
    assert set(bob) == {"agent:helper", "agent:writer"}
    assert (bob["agent:writer"].mode, bob["agent:writer"].matched) == ("granted", ("team:r/nlp",))
    assert "t.yaml:" in bob["agent:writer"].sources[0].origin
    assert [d.listing for d in discover(graph, "cat@t.io")] == ["agent:helper", "agent:writer"]  # org:s
    assert [d.listing for d in discover(graph, "ann@t.io")] == ["agent:helper"]
    # unpublished listings are never discovered
    assert all("connection:crm" not in discoverable(graph, u) for u in ("ann@t.io", "cat@t.io"))
    for user in ("ann@t.io", "bob@t.io", "cat@t.io", "dan@t.io", "eve@t.io"):
        assert discoverable(graph, user) == {d.listing for d in discover(graph, user)}


def test_agents_a_user_may_use(graph: AccountGraph) -> None:
    ann = {a.name: a.via for a in usable_agents(graph, "ann@t.io")}
    assert ann == {"helper": ("team:r/ml",), "writer": ("org:r",)}
    assert {a.name for a in usable_agents(graph, "eve@t.io")} == {"writer"}  # org admin of r
    assert {a.name for a in usable_agents(graph, "dan@t.io")} == {"helper"}
    assert usable_agents(graph, "cat@t.io") == ()  # no grant, no use; "nobody" has none at all
    for user in ("ann@t.io", "bob@t.io", "cat@t.io", "dan@t.io", "eve@t.io"):
        assert usable_agent_names(graph, user) == {a.name for a in usable_agents(graph, user)}


def test_connections_a_user_may_use(graph: AccountGraph) -> None:
    [ann] = usable_connections(graph, "ann@t.io")
    assert (ann.name, ann.via, ann.can_manage) == ("crm", ("team:r/ml", "user:ann@t.io"), True)
    [bob] = usable_connections(graph, "bob@t.io")
    assert (bob.via, bob.can_manage) == (("team:r/ml",), False)
    assert [c.via for c in usable_connections(graph, "cat@t.io")] == [("org:s",)]
    assert usable_connections(graph, "dan@t.io") == ()
    assert usable_connection_names(graph, "cat@t.io") == {"crm"}
