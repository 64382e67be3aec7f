"""Effective model access: chain user → teams → orgs → account, deny wins within a level,
default deny, the account's model_policy as a ceiling; membership from the directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cockpit.config.validate import validate_path
from cockpit.policy.graph import AccountGraph, account_graph, build_graphs
from cockpit.policy.model_access import allowed_models, effective_models, model_access
from cockpit.resources.desired import desired_state

ACCOUNT = """\
apiVersion: cockpit/v1
kind: Account
name: t
model_policy: {{console: {{allow: [], deny: []}}, copilot: {{allow: [{allow}], deny: [{deny}]}}}}
"""
MODELS = "".join(
    f"---\napiVersion: cockpit/v1\nkind: Model\nname: {name}\nlitellm: {{model: openai/{name}}}\n"
    "pricing: {input_per_million: 1, output_per_million: 1}\n"
    for name in ("m1", "m2", "m3")
)
# ann: r/ml. bob: r/ml and r/nlp. cat: r/nlp and s/emea. dan: no team. eve: admin of org r only.
DIRECTORY = """\
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
      - {name: ml, members: [{user: ann@t.io}, {user: Bob@t.io}]}
      - {name: nlp, members: [{user: bob@t.io}, {user: cat@t.io}]}
  - name: s
    teams:
      - {name: emea, members: [{user: cat@t.io}]}
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
"""


def graph_of(tmp_path: Path, grants: str, console: str = "", allow: str = "", deny: str = "") -> AccountGraph:
    text = ACCOUNT.format(allow=allow, deny=deny) + MODELS + DIRECTORY
    text += f"---\napiVersion: cockpit/v1\nkind: ModelAccess\naccount: t\ndomain: copilot\ngrants:\n{grants}"
    if console:
        text += f"---\napiVersion: cockpit/v1\nkind: ModelAccess\naccount: t\ndomain: console\ngrants:\n{console}"
    (tmp_path / "t.yaml").write_text(text)
    result = validate_path(tmp_path)
    assert not [d for d in result.diagnostics if d.severity == "error"], [str(d) for d in result.diagnostics]
    return account_graph(desired_state(result.tenant, fingerprint=lambda *a: None), "t")


def test_specific_allow_beats_broader_deny(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, "  - {model: m1, scope: org:r, access: deny}\n  - {model: m1, scope: team:r/ml}\n")
    ann = model_access(graph, "copilot", "ann@t.io", "m1")
    assert ann.allowed and ann.level == "team"
    assert [(s.scope, s.detail) for s in ann.sources] == [("team:r/ml", "allow")]
    assert re.search(r"/t\.yaml:\d+:\d+$", ann.sources[0].origin)
    assert ann.sources[0].origin in ann.why
    cat = model_access(graph, "copilot", "cat@t.io", "m1")
    assert not cat.allowed and cat.level == "org"
    assert "deny at org:r" in cat.why


def test_specific_deny_beats_broader_allow(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, "  - {model: m1, scope: account}\n  - {model: m1, scope: user:dan@t.io, access: deny}\n")
    assert not model_access(graph, "copilot", "dan@t.io", "m1").allowed
    assert model_access(graph, "copilot", "ann@t.io", "m1").level == "account"


def test_deny_wins_within_a_level(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, "  - {model: m2, scope: team:r/ml}\n  - {model: m2, scope: team:r/nlp, access: deny}\n")
    bob = model_access(graph, "copilot", "bob@t.io", "m2")
    assert not bob.allowed and bob.level == "team"
    assert "deny wins over 1 allow" in bob.why
    assert model_access(graph, "copilot", "ann@t.io", "m2").allowed


def test_no_grant_anywhere_is_deny(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, "  - {model: m1, scope: account}\n")
    decision = model_access(graph, "copilot", "ann@t.io", "m3")
    assert not decision.allowed and decision.level is None and decision.sources == ()
    assert "default deny" in decision.why


def test_model_policy_allow_is_a_ceiling(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, "  - {model: m1, scope: account}\n  - {model: m3, scope: account}\n", allow="m1, m2")
    assert model_access(graph, "copilot", "ann@t.io", "m1").allowed
    m3 = model_access(graph, "copilot", "ann@t.io", "m3")
    assert not m3.allowed and m3.level == "account"
    assert "model_policy.copilot.allow omits m3" in m3.why
    assert m3.sources[-1].type == "account"


def test_model_policy_deny_always_applies(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, "  - {model: m1, scope: user:ann@t.io}\n", deny="m1")
    decision = model_access(graph, "copilot", "ann@t.io", "m1")
    assert not decision.allowed
    assert "model_policy.copilot.deny lists m1" in decision.why and "allowed by" in decision.why


def test_membership_is_expanded_from_the_directory(tmp_path: Path) -> None:
    graph = graph_of(
        tmp_path,
        "  - {model: m1, scope: org:r}\n  - {model: m2, scope: org:s}\n  - {model: m3, scope: team:r/nlp}\n",
    )
    directory = graph.directory("copilot")
    assert directory.teams_of("bob@t.io") == ("r/ml", "r/nlp")  # the second spelling is one user
    assert directory.orgs_of("cat@t.io") == ("r", "s")
    assert directory.orgs_of("eve@t.io") == ("r",)  # org admin, in no team
    assert allowed_models(graph, "copilot", "ann@t.io") == {"m1"}
    assert allowed_models(graph, "copilot", "cat@t.io") == {"m1", "m2", "m3"}
    assert allowed_models(graph, "copilot", "eve@t.io") == {"m1"}
    assert allowed_models(graph, "copilot", "dan@t.io") == set()
    assert allowed_models(graph, "copilot", "nobody@t.io") == set()


def test_domains_use_their_own_directory_and_grants(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, "  - {model: m1, scope: account}\n", console="  - {model: m2, scope: team:ops/sre}\n")
    assert allowed_models(graph, "console", "zed@t.io") == {"m2"}
    assert allowed_models(graph, "console", "ann@t.io") == set()
    assert allowed_models(graph, "copilot", "zed@t.io") == {"m1"}  # the account grant; not in the directory


def test_full_list_covers_the_catalog_and_agrees_with_the_fast_path(tmp_path: Path) -> None:
    graph = graph_of(
        tmp_path,
        "  - {model: m1, scope: account}\n  - {model: m1, scope: team:r/nlp, access: deny}\n"
        "  - {model: m2, scope: team:r/ml}\n  - {model: m2, scope: user:bob@t.io, access: deny}\n"
        "  - {model: m3, scope: org:s}\n  - {model: m3, scope: team:r/ml, access: deny}\n",
        deny="m3",
    )
    for user in ("ann@t.io", "bob@t.io", "cat@t.io", "dan@t.io", "eve@t.io"):
        decisions = effective_models(graph, "copilot", user)
        assert [d.model for d in decisions] == ["m1", "m2", "m3"]
        assert {d.model for d in decisions if d.allowed} == allowed_models(graph, "copilot", user), user


def test_the_index_is_built_once_per_account(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, "  - {model: m1, scope: account}\n")
    assert set(graph.catalog) == {"m1", "m2", "m3"}
    assert account_graph(desired_state(validate_path(tmp_path).tenant, lambda *a: None), "other").account is None
    with pytest.raises(KeyError):
        build_graphs(desired_state(validate_path(tmp_path).tenant, lambda *a: None))["other"]
