"""Effective guardrails: union over agent → user → teams → orgs → account, one entry per preset
with the levels that brought it; console presets resolve in the console directory."""

from __future__ import annotations

from pathlib import Path

from cockpit.config.validate import validate_path
from cockpit.policy.graph import AccountGraph, account_graph
from cockpit.policy.guardrails import effective_guardrails
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
users: [{email: ann@t.io}, {email: bob@t.io}, {email: dan@t.io}]
orgs:
  - name: r
    teams:
      - {name: ml, members: [{user: ann@t.io}, {user: bob@t.io}]}
---
apiVersion: cockpit/v1
kind: Directory
account: t
domain: console
users: [{email: ann@t.io}, {email: zed@t.io}]
orgs:
  - name: ops
    teams:
      - {name: sre, members: [{user: zed@t.io}]}
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: t
code: base
name: Baseline
assign: [account, team:r/ml]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: t
code: pii
name: PII
assign: [org:r, user:ann@t.io]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: t
code: agentonly
name: Agent only
assign: [agent:helper]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: t
code: gateway
name: Gateway
domain: console
assign: [account, team:ops/sre]
---
apiVersion: cockpit/v1
kind: Agent
account: t
name: helper
guardrails: [pii]
"""


def graph_of(tmp_path: Path) -> AccountGraph:
    (tmp_path / "t.yaml").write_text(TENANT)
    result = validate_path(tmp_path)
    assert result.ok, [str(d) for d in result.diagnostics]
    return account_graph(desired_state(result.tenant, fingerprint=lambda *a: None), "t")


def test_union_with_levels_deduplicated_by_preset(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    found = {(g.domain, g.code): g for g in effective_guardrails(graph, "ann@t.io", agent="helper")}
    assert list(found) == [("console", "gateway"), ("copilot", "agentonly"), ("copilot", "base"), ("copilot", "pii")]
    assert found["copilot", "pii"].levels == ("agent:helper", "user:ann@t.io", "org:r")
    assert found["copilot", "base"].levels == ("team:r/ml", "account")
    assert found["copilot", "agentonly"].levels == ("agent:helper",)
    assert found["console", "gateway"].levels == ("account",)
    assert found["copilot", "pii"].name == "PII"
    pii = found["copilot", "pii"]
    assert [s.type for s in pii.sources] == ["agent_guardrail", "guardrail_assignment", "guardrail_assignment"]
    assert all(s.origin and "t.yaml:" in s.origin for s in pii.sources)
    assert "agent:helper, user:ann@t.io, org:r" in pii.why


def test_without_an_agent_only_the_user_chain_counts(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    codes = {g.code: g.levels for g in effective_guardrails(graph, "bob@t.io", domain="copilot")}
    assert codes == {"base": ("team:r/ml", "account"), "pii": ("org:r",)}
    assert {g.code for g in effective_guardrails(graph, "dan@t.io", domain="copilot")} == {"base"}


def test_console_presets_resolve_in_the_console_directory(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    zed = effective_guardrails(graph, "zed@t.io", domain="console")
    assert [(g.code, g.levels) for g in zed] == [("gateway", ("team:ops/sre", "account"))]
    # the copilot team r/ml brings no console preset, and console presets never reach agents
    ann = effective_guardrails(graph, "ann@t.io", agent="helper", domain="console")
    assert [(g.code, g.levels) for g in ann] == [("gateway", ("account",))]
