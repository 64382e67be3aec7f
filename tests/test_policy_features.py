"""Effective features: the most specific level wins; the account's feature pack is the
account-level default and the ceiling."""

from __future__ import annotations

from pathlib import Path

from cockpit.config.validate import validate_path
from cockpit.policy.features import effective_features, feature_access
from cockpit.policy.graph import AccountGraph, account_graph
from cockpit.resources.desired import desired_state
from cockpit.resources.state import Resource, State

TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: t
feature_pack:
  features: [agents, images, mcp]
  config: {agents: {max: 5}, global_setting: 1}
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
      - {name: nlp, members: [{user: bob@t.io}]}
---
apiVersion: cockpit/v1
kind: Features
account: t
domain: copilot
entitlements:
  - {feature: images, scope: account, enabled: false}
  - {feature: images, scope: team:r/ml, enabled: true, config: {daily: 20}}
  - {feature: images, scope: user:ann@t.io, enabled: false}
  - {feature: mcp, scope: team:r/ml, enabled: true, config: {transports: [sse]}}
  - {feature: mcp, scope: team:r/nlp, enabled: false}
  - {feature: agents, scope: org:r, enabled: true, config: {max: 10}}
"""


def state_of(tmp_path: Path) -> State:
    (tmp_path / "t.yaml").write_text(TENANT)
    result = validate_path(tmp_path)
    assert result.ok, [str(d) for d in result.diagnostics]
    return desired_state(result.tenant, fingerprint=lambda *a: None)


def graph_of(tmp_path: Path) -> AccountGraph:
    return account_graph(state_of(tmp_path), "t")


def test_most_specific_level_wins(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    ann = feature_access(graph, "copilot", "ann@t.io", "images")
    assert (ann.enabled, ann.level) == (False, "user")
    bob = feature_access(graph, "copilot", "bob@t.io", "images")
    assert (bob.enabled, bob.level, dict(bob.config)) == (True, "team", {"daily": 20})
    assert bob.sources[0].scope == "team:r/ml" and "t.yaml:" in bob.sources[0].origin
    dan = feature_access(graph, "copilot", "dan@t.io", "images")
    assert (dan.enabled, dan.level) == (False, "account")  # the account entitlement beats the pack


def test_disabled_wins_within_a_level(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    bob = feature_access(graph, "copilot", "bob@t.io", "mcp")
    assert (bob.enabled, bob.level) == (False, "team")
    assert [s.scope for s in bob.sources] == ["team:r/nlp"]
    assert feature_access(graph, "copilot", "ann@t.io", "mcp").enabled


def test_the_pack_is_the_default(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    dan = feature_access(graph, "copilot", "dan@t.io", "agents")
    assert (dan.enabled, dan.level, dict(dan.config)) == (True, "feature_pack", {"max": 5})
    assert dan.sources[0].type == "account"
    assert feature_access(graph, "copilot", "ann@t.io", "agents").config == {"max": 10}
    # another domain has no entitlements at all: the pack decides everything there
    console = effective_features(graph, "console", "ann@t.io")
    assert [(f.feature, f.enabled, f.level) for f in console] == [
        ("agents", True, "feature_pack"), ("images", True, "feature_pack"), ("mcp", True, "feature_pack"),
    ]


def test_the_pack_is_the_ceiling(tmp_path: Path) -> None:
    """An entitlement outside the pack is a validation error; a database may still hold one."""
    state = state_of(tmp_path)
    state.add(Resource("feature_entitlement", "t", ("copilot", "voice", "user", "ann@t.io"), {"enabled": True, "config": {}}))
    graph = account_graph(state, "t")
    voice = feature_access(graph, "copilot", "ann@t.io", "voice")
    assert (voice.enabled, voice.level) == (False, "feature_pack")
    assert "not in the account's feature pack" in voice.why
    assert [f.feature for f in effective_features(graph, "copilot", "ann@t.io")] == ["agents", "images", "mcp", "voice"]
