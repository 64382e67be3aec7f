"""Effective answers of the read API over examples/acme, on SQLite and PostgreSQL: model access
(one model and the full list, by e-mail and by ids, membership expanded from the directory),
guardrails as a union with their levels, features with the pack as default and ceiling, and
marketplace discover; and the cached graph following a new apply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.cockpit import EXAMPLES, Cockpit
from harness.lists_api import Api, open_api


@pytest.fixture
def api(cockpit: Cockpit) -> Iterator[Api]:
    with open_api(cockpit) as opened:
        yield opened


def ids(api: Api, domain: str = "copilot") -> dict[str, str]:
    """Row ids by natural key: org names, `org/team`, e-mails, agent names, `account`."""
    found = {o["name"]: o["id"] for o in api.every(f"/v1/{domain}/orgs")}
    found.update({t["key"]: t["id"] for t in api.every(f"/v1/{domain}/teams")})
    found.update({u["email"]: u["id"] for u in api.every(f"/v1/{domain}/users")})
    found.update({a["name"]: a["id"] for a in api.every("/v1/copilot/agents")})
    found["account"] = api.ok("/v1/accounts/acme")["item"]["account_id"]
    return found


def _line(text: str) -> int:
    """The line of examples/acme/access/models.yaml that holds `text`."""
    lines = (EXAMPLES / "acme" / "access" / "models.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def model(api: Api, domain: str = "copilot", **params: Any) -> dict[str, Any]:
    return api.ok(f"/v1/{domain}/models/effective", **params)


def test_effective_models_by_email_and_by_ids(api: Api) -> None:
    known = ids(api)
    # grace is in research/data, whose team-level deny beats the research org's allow
    grace = model(api, email="grace.kim@acme.com", model_name="gpt-4o")
    assert (grace["effective_access"], grace["allowed"], grace["level"]) == ("deny", False, "team")
    assert grace["resolved_from"]["scope_id"] == known["research/data"]
    assert [c["access_mode"] for c in grace["candidates"]] == ["deny"]
    assert "deny" in grace["why"] and "team:research/data" in grace["why"]
    # where the deciding grant is declared, as the apply recorded it
    assert [s["origin"] for s in grace["sources"]] == [f"access/models.yaml:{_line('{model: gpt-4o, scope: team:research/data, access: deny}')}:5"]
    assert f"(access/models.yaml:{_line('{model: gpt-4o, scope: team:research/data, access: deny}')}:5)" in grace["why"]
    assert [(s["scope_type"], s["scope_id"]) for s in grace["resolution_order"]] == [
        ("user", known["grace.kim@acme.com"]), ("team", known["research/data"]),
        ("org", known["research"]), ("account", known["account"]),
    ]
    for params in ({"user_id": known["grace.kim@acme.com"]}, {"user_id": "grace.kim@acme.com"}, {"email": "Grace.Kim@acme.com"}):
        assert model(api, model_name="gpt-4o", **params) == grace, params
    # hiro is in the same team, but his own grant is more specific
    hiro = model(api, email="hiro.tanaka@acme.com", model_name="gpt-4o")
    assert (hiro["allowed"], hiro["level"]) == (True, "user")
    # the account's copilot model_policy is a ceiling no grant exceeds
    dana = model(api, email="dana.white@acme.com", model_name="azure-gpt-4o")
    assert dana["allowed"] is False and dana["ceiling"]["detail"] == "model_policy.copilot.deny lists azure-gpt-4o"
    # no grant anywhere: default deny
    admin = model(api, email="admin@acme.com", model_name="claude-sonnet")
    assert (admin["allowed"], admin["resolved_from"], admin["level"]) == (False, None, None)

    # a team or an org without a user: the chain is that team, its org, the account
    team = model(api, team_id=known["research/data"], model_name="gpt-4o")
    assert team["allowed"] is False and team["team_id"] == known["research/data"]
    assert [s["scope_type"] for s in team["resolution_order"]] == ["team", "org", "account"]
    assert model(api, org_id="research", model_name="gpt-4o")["allowed"] is True
    assert model(api, model_name="gpt-4o-mini")["resolved_from"]["scope_type"] == "account"

    # every model for a user: the catalog, with a decision each
    chen = model(api, email="chen.wei@acme.com")
    assert chen["allowed_models"] == ["claude-sonnet", "gpt-4.1", "gpt-4o", "gpt-4o-mini"]
    assert chen["total"] == 5 and [i["model_name"] for i in chen["items"]] == ["azure-gpt-4o", "claude-sonnet", "gpt-4.1", "gpt-4o", "gpt-4o-mini"]
    by_name = {i["model_name"]: i for i in chen["items"]}
    assert by_name["gpt-4o"]["level"] == "team" and by_name["gpt-4o"]["resolved_from"]["scope_key"] == "sales/solutions"
    assert by_name["claude-sonnet"]["level"] == "user"

    # console: its own directory, grants and ceiling
    console = ids(api, "console")
    ci = model(api, "console", user_id=console["svc-ci@acme.com"])
    assert ci["allowed_models"] == ["azure-gpt-4o", "gpt-4o", "gpt-4o-mini"] and ci["domain"] == "console"
    azure = next(i for i in ci["items"] if i["model_name"] == "azure-gpt-4o")
    assert azure["resolved_from"]["scope_key"] == "engineering/platform"  # svc-ci's team in the console directory
    chen_console = model(api, "console", email="chen.wei@acme.com", model_name="gpt-4o-mini")
    assert chen_console["allowed"] is False and chen_console["level"] == "user"

    missing = api.get("/v1/copilot/models/effective", email="nobody@acme.com")
    assert (missing.status_code, missing.json()) == (404, {"detail": "copilot user not found"})
    assert api.get("/v1/console/models/effective", email="dana.white@acme.com").json() == {"detail": "console user not found"}


def test_effective_guardrails_union_with_levels(api: Api) -> None:
    known = ids(api)
    chen = api.ok("/v1/copilot/guardrails/effective", email="chen.wei@acme.com")
    levels = {i["code"]: [level["scope"] for level in i["levels"]] for i in chen["items"]}
    assert levels == {
        "pii-strict": ["org:sales", "account"],
        "secrets-leak": ["user:chen.wei@acme.com", "team:research/ml"],
    }
    pii = next(i for i in chen["items"] if i["code"] == "pii-strict")
    assert (pii["scope_type"], pii["scope_id"]) == ("org", known["sales"])
    assert [s["type"] for s in pii["sources"]] == ["guardrail_assignment", "guardrail_assignment"]
    assert pii["preset_json"]["mode"] == "pre_call" and "org:sales" in pii["why"]
    assert chen["resolution_order"][0]["scope_id"] == known["chen.wei@acme.com"]

    with_agent = api.ok("/v1/copilot/guardrails/effective", user_id=known["dana.white@acme.com"], agent_id=known["helpdesk"])
    assert [(i["code"], [level["scope"] for level in i["levels"]]) for i in with_agent["items"]] == [
        ("pii-strict", ["agent:helpdesk", "user:dana.white@acme.com", "account"]),
    ]
    assert with_agent["items"][0]["scope_id"] == known["helpdesk"]
    assert {s["type"] for s in with_agent["items"][0]["sources"]} == {"agent_guardrail", "guardrail_assignment"}
    assert with_agent["resolution_order"][0] == {"scope_type": "agent", "scope_id": known["helpdesk"], "scope_key": "helpdesk", "scope": "agent:helpdesk"}

    reviewer = api.ok("/v1/copilot/guardrails/effective", agent_id="code-reviewer")
    assert {i["code"]: [level["scope"] for level in i["levels"]] for i in reviewer["items"]} == {
        "pii-strict": ["agent:code-reviewer", "account"], "secrets-leak": ["agent:code-reviewer"],
    }
    console = api.ok("/v1/console/guardrails/effective", email="svc-support-bot@acme.com")
    assert [(i["code"], [level["scope"] for level in i["levels"]]) for i in console["items"]] == [
        ("console-baseline", ["user:svc-support-bot@acme.com", "account"]),
    ]
    assert api.get("/v1/console/guardrails/effective", agent_id="helpdesk").status_code == 400


def test_effective_features(api: Api) -> None:
    def feature(**params: Any) -> dict[str, Any]:
        return api.ok("/v1/features/effective", **params)

    evan = feature(domain="copilot", email="evan.brooks@acme.com", feature_code="create_agents")
    assert (evan["effective_enabled"], evan["level"], evan["resolved_from"]["scope"]) == (False, "user", "user:evan.brooks@acme.com")
    ines = feature(domain="copilot", email="ines.garcia@acme.com", feature_code="create_agents")
    assert ines["effective_enabled"] is True and ines["effective_config"] == {"max_agents_per_user": 10}
    assert ines["level"] == "org" and ines["candidates"][0]["scope_key"] == "engineering"
    outside = feature(domain="copilot", email="ines.garcia@acme.com", feature_code="teleport")
    assert (outside["effective_enabled"], outside["level"], outside["resolved_from"]) == (False, "feature_pack", None)
    dana = feature(domain="copilot", email="dana.white@acme.com")
    enabled = {i["feature_code"]: i["effective_enabled"] for i in dana["items"]}
    assert enabled["image_generation"] is True and enabled["create_connections_mcp"] is True
    mcp = next(i for i in dana["items"] if i["feature_code"] == "create_connections_mcp")
    assert mcp["level"] == "feature_pack" and mcp["resolved_from"]["via"] == "feature_pack"
    assert dana["total"] == 6 and "image_generation" in dana["enabled_features"]
    support = feature(domain="console", team_id="sales/support", feature_code="model_access")
    assert support["effective_enabled"] is False and support["level"] == "team"
    assert api.get("/v1/features/effective", domain="galaxy").json() == {"detail": "domain must be console|copilot"}


def test_discover(api: Api) -> None:
    known = ids(api)

    def discover(**params: Any) -> dict[str, Any]:
        return api.ok("/v1/copilot/marketplace/discover", **params)

    dana = discover(email="dana.white@acme.com")
    assert dana["total"] == 2
    visibility = {i["entity_name"]: i["visibility"] for i in dana["items"]}
    assert visibility["helpdesk"]["mode"] == "global" and visibility["helpdesk"]["matched_scope"] == "global"
    assert visibility["salesforce"]["mode"] == "granted"
    assert visibility["salesforce"]["matched_scope"] == f"user:{known['dana.white@acme.com']}"
    # membership expanded: xavier is in sales/emea, so org:sales reaches him
    xavier = discover(user_id=known["xavier.moreau@acme.com"])
    salesforce = next(i for i in xavier["items"] if i["entity_name"] == "salesforce")
    assert salesforce["visibility"]["matched_scope"] == f"org:{known['sales']}" and "org:sales" in salesforce["visibility"]["why"]
    # the unpublished code reviewer stays hidden from its grantees; no grant reaches alice
    assert [i["entity_name"] for i in discover(email="alice.nguyen@acme.com")["items"]] == ["helpdesk"]
    assert {i["entity_name"] for i in discover(org_id="sales")["items"]} == {"helpdesk", "salesforce"}
    assert [i["entity_name"] for i in discover()["items"]] == ["helpdesk"]
    assert discover(email="dana.white@acme.com", entity_type="connection")["total"] == 1
    assert discover(email="dana.white@acme.com", title="helpdesk")["items"][0]["entity_id"] == known["helpdesk"]
    assert discover(email="dana.white@acme.com", limit=1)["total"] == 2


def test_the_cached_graph_follows_an_apply(api: Api) -> None:
    before = model(api, email="grace.kim@acme.com", model_name="gpt-4o")
    cache = api.client.app.state.snapshots
    snapshot = next(iter(cache._snapshots.values()))
    model(api, email="grace.kim@acme.com", model_name="gpt-4o")
    assert next(iter(cache._snapshots.values())) is snapshot, "a second request reuses the graph"

    cache.ttl = 3600  # trusted without a version check for an hour
    access = api.cockpit.tenant / "access" / "models.yaml"
    access.write_text(access.read_text().replace("  - {model: gpt-4o, scope: team:research/data, access: deny}      # labelling uses mini only\n", ""))
    applied = api.cockpit.apply("--allow-delete")
    assert applied.exit_code == 0, applied.output
    assert model(api, email="grace.kim@acme.com", model_name="gpt-4o") == before, "fresh within the ttl"
    cache.ttl = 0  # checked on every request: the apply's audit events make a new version
    after = model(api, email="grace.kim@acme.com", model_name="gpt-4o")
    assert (before["allowed"], after["allowed"], after["level"]) == (False, True, "org")
    reloaded = cache._snapshots[snapshot.account_id]
    assert reloaded is not snapshot and reloaded.version != snapshot.version
    assert model(api, email="grace.kim@acme.com", model_name="gpt-4o") == after
    assert cache._snapshots[snapshot.account_id] is reloaded, "an unchanged version keeps the graph"


def test_effective_rate_limits(api: Api) -> None:
    known = ids(api)

    def limits(domain: str = "copilot", **params: Any) -> dict[str, Any]:
        return api.ok(f"/v1/{domain}/rate-limits/effective", **params)

    alice = limits(email="alice.nguyen@acme.com", agent_id="helpdesk", model_name="gpt-4o")
    assert [(i["scope"], i["per_user"], i["model_name"], i["rpm"], i["tpm"]) for i in alice["items"]] == [
        ("agent:helpdesk", False, None, 100, None),
        ("user:alice.nguyen@acme.com", False, None, 300, None),
        ("team:research/ml", False, "gpt-4o", 120, None),
        ("account", False, None, 6000, 2000000),
        ("account", True, None, 30, 60000),
    ]
    assert alice["items"][1]["scope_id"] == known["alice.nguyen@acme.com"] and alice["items"][0]["scope_id"] == known["helpdesk"]
    assert alice["items"][4]["counter"] == "acme:copilot:account::*:user:alice.nguyen@acme.com"
    team = alice["items"][2]
    assert team["sources"][0]["type"] == "rate_limit" and team["sources"][0]["scope_id"] == known["research/ml"]
    assert "gpt-4o calls to 120 requests a minute" in team["why"]
    # another model: the team's gpt-4o limit does not count; without a model: every limit
    assert "team:research/ml" not in [i["scope"] for i in limits(email="alice.nguyen@acme.com", model_name="gpt-4o-mini")["items"]]
    assert limits(email="alice.nguyen@acme.com")["total"] == 4
    assert [i["scope"] for i in limits(team_id="research/ml")["items"]] == ["team:research/ml", "account", "account"]
    console = limits("console", email="svc-ci@acme.com")
    assert [(i["scope"], i["per_user"], i["rpm"]) for i in console["items"]] == [("account", True, 60)]
    assert api.get("/v1/console/rate-limits/effective", agent_id="helpdesk").status_code == 400
    assert api.get("/v1/copilot/rate-limits/effective", email="nobody@acme.com").status_code == 404
