"""Effective rate limits: every limit on the caller's chain, each with its counter key; and the
config rules of `RateLimits` and of a model's deployments and fallbacks (located errors)."""

from __future__ import annotations

from pathlib import Path

from cockpit.config.scopes import Scope
from cockpit.config.validate import validate_path
from cockpit.policy.graph import AccountGraph, account_graph
from cockpit.policy.impact import access_impact
from cockpit.policy.rate_limits import counter_key, effective_rate_limits
from cockpit.resources.desired import desired_state

TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: t
---
apiVersion: cockpit/v1
kind: Model
name: big
litellm: {model: openai/big}
pricing: {input_per_million: 1, output_per_million: 2}
---
apiVersion: cockpit/v1
kind: Model
name: small
deployments:
  - {name: eu, litellm: {model: azure/small, api_key: "${env:T_KEY}"}, weight: 3, rpm: 10}
  - {name: us, litellm: {model: openai/small}}
fallbacks: [big]
pricing: {input_per_million: 1, output_per_million: 2}
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
users: [{email: ann@t.io}]
---
apiVersion: cockpit/v1
kind: Agent
account: t
name: helper
guardrails: [base]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: t
code: base
name: Base
---
apiVersion: cockpit/v1
kind: RateLimits
account: t
domain: copilot
limits:
  - {scope: account, rpm: 6000, tpm: 2000000}
  - {scope: account, per_user: true, rpm: 30}
  - {scope: org:r, model: big, tpm: 5000}
  - {scope: team:r/ml, model: small, rpm: 120}
  - {scope: user:ann@t.io, rpm: 300}
  - {scope: agent:helper, rpm: 100}
---
apiVersion: cockpit/v1
kind: RateLimits
account: t
domain: console
limits:
  - {scope: account, rpm: 7}
"""


def graph_of(tmp_path: Path, text: str = TENANT) -> AccountGraph:
    (tmp_path / "t.yaml").write_text(text)
    result = validate_path(tmp_path)
    assert result.ok, [str(d) for d in result.diagnostics]
    return account_graph(desired_state(result.tenant, fingerprint=lambda *a: None), "t")


def test_every_limit_on_the_chain_most_specific_first(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    limits = effective_rate_limits(graph, "copilot", "Ann@t.io", "helper", "small")
    assert [(str(x.scope), x.per_user, x.model, x.rpm, x.tpm) for x in limits] == [
        ("agent:helper", False, None, 100, None),
        ("user:ann@t.io", False, None, 300, None),
        ("team:r/ml", False, "small", 120, None),
        ("account", False, None, 6000, 2000000),
        ("account", True, None, 30, None),
    ]
    assert [x.label for x in limits][2:] == ["team:r/ml (small)", "account", "account (per user)"]
    # provenance: which scope, and the file and line that declares the limit
    assert limits[2].source.scope == "team:r/ml" and limits[2].source.detail == "rpm 120"
    assert limits[2].source.origin.startswith(str(tmp_path / "t.yaml")) or "t.yaml:" in limits[2].source.origin


def test_model_limits_count_only_that_model_and_per_user_keys_name_the_user(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    big = effective_rate_limits(graph, "copilot", "bob@t.io", None, "big")
    assert [(str(x.scope), x.model) for x in big] == [("org:r", "big"), ("account", None), ("account", None)]
    keys = {(str(x.scope), x.per_user): x.key for x in big}
    assert keys[("account", True)] == "t:copilot:account::*:user:bob@t.io"
    assert keys[("account", False)] == "t:copilot:account::*"
    assert keys[("org:r", False)] == "t:copilot:org:r:big"
    ann = {x.key for x in effective_rate_limits(graph, "copilot", "ann@t.io", None, "big")}
    assert "t:copilot:account::*" in ann and "t:copilot:account::*:user:ann@t.io" in ann
    assert "t:copilot:account::*:user:bob@t.io" not in ann
    # dan is in no team or org: only the account's limits
    assert [str(x.scope) for x in effective_rate_limits(graph, "copilot", "dan@t.io", None, "small")] == ["account", "account"]


def test_domains_are_apart_and_agents_only_count_in_copilot(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    console = effective_rate_limits(graph, "console", "ann@t.io", "helper", "small")
    assert [(str(x.scope), x.rpm, x.key) for x in console] == [("account", 7, "t:console:account::*")]
    assert effective_rate_limits(account_graph(graph_state_without_limits(tmp_path), "t"), "copilot", "ann@t.io", None, "big") == []


def graph_state_without_limits(tmp_path: Path):
    text = TENANT.split("---\napiVersion: cockpit/v1\nkind: RateLimits")[0]
    (tmp_path / "t.yaml").write_text(text)
    result = validate_path(tmp_path)
    return desired_state(result.tenant, fingerprint=lambda *a: None)


def test_counter_keys_cannot_run_into_each_other() -> None:
    one = counter_key("a", "copilot", Scope("team", "x/y"), None, None)
    two = counter_key("a", "copilot", Scope("team", "x"), "y", None)
    assert one != two and one == "a:copilot:team:x%2Fy:*"
    assert counter_key("a", "copilot", Scope("user", "p:q@t.io"), None, None) == "a:copilot:user:p%3Aq@t.io:*"


def test_deployments_reach_the_index(tmp_path: Path) -> None:
    graph = graph_of(tmp_path)
    assert sorted(d.key for d in graph.deployments["small"]) == [("small", "eu"), ("small", "us")]
    assert graph.catalog["small"].fields["litellm"] is None and graph.catalog["small"].fields["fallbacks"] == ["big"]
    eu = next(d for d in graph.deployments["small"] if d.key[1] == "eu")
    assert (eu.fields["weight"], eu.fields["rpm"], eu.fields["tpm"]) == (3, 10, None)


# -- the config rules, located -------------------------------------------------------------


def _errors(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "t.yaml").write_text(text)
    result = validate_path(tmp_path)
    return [str(d).replace(str(tmp_path) + "/", "") for d in result.diagnostics if d.severity == "error"]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_rate_limit_rules_are_located(tmp_path: Path) -> None:
    bad = TENANT.replace(
        "  - {scope: agent:helper, rpm: 100}\n",
        "  - {scope: agent:helper, rpm: 100}\n"
        "  - {scope: user:ann@t.io, per_user: true, rpm: 5}\n"
        "  - {scope: team:r/ml}\n"
        "  - {scope: team:r/nope, rpm: 1}\n"
        "  - {scope: account, model: huge, rpm: 1}\n"
        "  - {scope: team:r/ml, model: small, rpm: 60}\n",
    ).replace("  - {scope: account, rpm: 7}\n", "  - {scope: account, rpm: 7}\n  - {scope: agent:helper, rpm: 1}\n")
    errors = _errors(tmp_path, bad)
    joined = "\n".join(errors)
    assert f"t.yaml:{_line_of(bad, 'per_user: true, rpm: 5')}:" in joined and "remove per_user" in joined
    assert f"t.yaml:{_line_of(bad, '{scope: team:r/ml}')}:5: error: a rate limit needs rpm" in joined
    assert "unknown team 'r/nope'" in joined
    assert "model 'huge' is not in the catalog" in joined
    assert f"t.yaml:{_line_of(bad, 'model: small, rpm: 60')}:5: error: duplicate rate limit for team:r/ml on small (first at t.yaml:{_line_of(bad, 'model: small, rpm: 120')}:5)" in joined
    assert "agents are copilot resources" in joined
    zero = TENANT.replace("  - {scope: account, rpm: 7}\n", "  - {scope: account, tpm: 0}\n  - {scope: account, rpm: 2.5}\n")
    errors = _errors(tmp_path, zero)
    assert f"t.yaml:{_line_of(zero, 'tpm: 0')}:27: error: 'tpm' must be > 0 (got 0)" in errors
    assert any(e.startswith(f"t.yaml:{_line_of(zero, 'rpm: 2.5')}:") for e in errors), errors


def test_model_routing_rules_are_located(tmp_path: Path) -> None:
    bad = TENANT.replace("fallbacks: [big]", "fallbacks: [big, small, nope]").replace(
        "litellm: {model: openai/big}\n", "litellm: {model: openai/big}\nfallbacks: [small]\ndeployments: [{name: a, litellm: {model: x}}]\n"
    ).replace("  - {name: us, litellm: {model: openai/small}}", "  - {name: eu, litellm: {model: openai/small}}")
    errors = _errors(tmp_path, bad)
    joined = "\n".join(errors)
    assert "model 'big' gives both `litellm` and `deployments`" in joined
    assert "model 'small' names itself as a fallback" in joined
    assert "model 'nope' is not in the catalog" in joined
    assert "fallback cycle" in joined and ("big → small → big" in joined or "small → big → small" in joined)
    assert "duplicate deployment 'eu'" in joined
    literal = TENANT.replace("{model: openai/small}}", "{model: openai/small, api_key: sk-live-123}}")
    errors = _errors(tmp_path, literal)
    assert any(e.startswith(f"t.yaml:{_line_of(literal, 'sk-live-123')}:") and "reference" in e for e in errors), errors
    assert not any("sk-live-123" in e for e in errors)
    reserved = TENANT.replace("${env:T_KEY}", "${env:COCKPIT_SECRET_KEY}")
    errors = _errors(tmp_path, reserved)
    assert any(e.startswith(f"t.yaml:{_line_of(reserved, 'COCKPIT_SECRET_KEY')}:") and "a setting of the host" in e for e in errors), errors
    none = TENANT.replace("litellm: {model: openai/big}\n", "")
    assert any("model 'big' has no deployment" in e for e in _errors(tmp_path, none))


# -- the plan's access impact ------------------------------------------------------------


def _state(tmp_path: Path, text: str):
    (tmp_path / "t.yaml").write_text(text)
    result = validate_path(tmp_path)
    assert result.ok, [str(d) for d in result.diagnostics]
    return desired_state(result.tenant, fingerprint=lambda *a: None)


GRANTED = TENANT + """\
---
apiVersion: cockpit/v1
kind: ModelAccess
account: t
domain: copilot
grants: [{model: small, scope: account}, {model: big, scope: org:r}]
"""


def test_rate_limit_and_routing_changes_are_in_the_access_impact(tmp_path: Path) -> None:
    before = _state(tmp_path, GRANTED)
    edited = (
        GRANTED.replace("{scope: team:r/ml, model: small, rpm: 120}", "{scope: team:r/ml, model: small, rpm: 60, tpm: 900}")
        .replace("  - {scope: user:ann@t.io, rpm: 300}\n", "")
        .replace("{scope: account, per_user: true, rpm: 30}", "{scope: account, per_user: true, rpm: 45}")
        .replace("weight: 3, rpm: 10}", "weight: 1, rpm: 10}")
        .replace("  - {name: us, litellm: {model: openai/small}}\n", "")
        .replace("fallbacks: [big]", "fallbacks: []")
    )
    after = _state(tmp_path, edited)
    changes = [(c.domain, c.subject, c.what, c.name, c.before, c.after) for c in access_impact(before, after) if c.what in ("rate limit", "routing")]
    assert changes == [
        ("copilot", "account", "rate limit", "per user rpm", 30, 45),
        ("copilot", "model:small", "routing", "deployment eu", {"model": "azure/small", "weight": 3, "rpm": 10}, {"model": "azure/small", "weight": 1, "rpm": 10}),
        ("copilot", "model:small", "routing", "deployment us", {"model": "openai/small", "weight": 1}, None),
        ("copilot", "model:small", "routing", "fallbacks", ["big"], []),
        ("copilot", "team:r/ml", "rate limit", "small rpm", 120, 60),
        ("copilot", "team:r/ml", "rate limit", "small tpm", None, 900),
        ("copilot", "user:ann@t.io", "rate limit", "rpm", 300, None),
    ]
    assert all(c.gains is None for c in access_impact(before, after) if c.what in ("rate limit", "routing"))
    assert not [c for c in access_impact(before, before) if c.what in ("rate limit", "routing")]
