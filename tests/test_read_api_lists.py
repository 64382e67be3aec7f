"""The read API's lists and single objects over an applied tenant, on SQLite and PostgreSQL:
envelopes and content at the old system's paths, paging and its cap, tenant isolation (another
account's ids are 404), guard texts, and secrets that never reach a response."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.cockpit import Cockpit
from harness.lists_api import BIG_DIRECTORY, CANARY, MASTER_KEY, Api, open_api

@pytest.fixture
def api(cockpit: Cockpit) -> Iterator[Api]:
    with open_api(cockpit) as opened:
        yield opened


def test_accounts_bundle_admins_sso_and_settings(api: Api) -> None:
    accounts = api.ok("/v1/accounts", account=None)
    assert accounts["total"] == 2 and {a["account_name"] for a in accounts["items"]} == {"acme", "globex"}
    acme = api.ok("/v1/accounts/acme")["item"]
    assert api.ok(f"/v1/accounts/{acme['account_id']}")["item"]["account_name"] == "acme"
    assert acme["domain"] == "acme.com" and acme["status"] == "active"
    assert [a["user_email"] for a in acme["admins"]] == ["admin@acme.com", "ines.garcia@acme.com", "rahul.mehta@acme.com"]
    assert acme["sso_config"]["sso_settings"]["client_secret"] == "••••••••"
    assert acme["sso_config"]["sso_settings"]["client_id"] == "301234567890123457@cockpit"
    assert acme["allocation"]["monthly_credits"] == 50000 and acme["allocation"]["credit_factor"] == 1.25
    assert "image_generation" in acme["feature_pack"]["features"]
    assert acme["console_model_policy"] == {"allow_models": ["gpt-4o", "gpt-4o-mini", "azure-gpt-4o"], "deny_models": ["claude-sonnet"]}
    assert acme["zitadel_config"]["role_prefix"] == "acme_"
    assert api.ok("/v1/accounts", account=None, status="suspended") == {"items": [], "total": 0}

    admins = api.ok("/v1/accounts/acme/admins")
    assert admins["total"] == 3 and admins["items"][2]["role"] == "console_org_admin"
    assert api.ok("/v1/accounts/globex/sso")["item"]["sso_settings"] == {"client_id": "globex-app", "client_secret": "••••••••"}
    assert api.ok("/v1/accounts/acme/feature-pack")["feature_pack"]["config"]["max_agents_per_user"] == 5
    assert api.ok("/v1/accounts/acme/console-model-policy")["deny_models"] == ["claude-sonnet"]
    assert api.ok("/v1/accounts/acme/zitadel/config")["zitadel_config"]["project_id"] == "301234567890123456"

    plan = api.ok("/v1/accounts/acme/zitadel/provision/plan")
    assert plan["account_id"] == acme["account_id"]
    assert [r["key"] for r in plan["standard_roles"]] == [
        "acme_account_admin", "acme_console_org_admin", "acme_console_team_admin",
        "acme_copilot_org_admin", "acme_copilot_team_admin", "acme_end_user",
    ]
    assert plan["zitadel_config"]["role_mappings"]["copilot_team_admin"] == "acme_copilot_team_admin"
    admins_plan = {a["user_email"]: a for a in plan["account_admins"]}
    assert admins_plan["rahul.mehta@acme.com"]["resolved_role_keys"] == ["acme_console_org_admin"]
    assert admins_plan["admin@acme.com"]["desired_role_keys"] == ["acme_account_admin", "acme_end_user"]
    assert admins_plan["admin@acme.com"]["user_id"] == "301234567890130001"
    assert api.ok("/v1/accounts/acme/zitadel/provision/plan", role_prefix="x_")["standard_roles"][2]["key"] == "x_console_team_admin"
    missing = api.get("/v1/accounts/globex/zitadel/provision/plan")
    assert missing.status_code == 400 and missing.json()["detail"] == "project_id missing in request and account zitadel config"
    assert api.get("/v1/accounts/nobody").json() == {"detail": "Account not found"}


def test_directories(api: Api) -> None:
    orgs = api.ok("/v1/copilot/orgs")
    assert orgs["total"] == 4
    assert {o["name"]: o["is_default_global"] for o in orgs["items"]}["global"] is True
    assert "is_default_global" not in api.ok("/v1/console/orgs")["items"][0]
    research = api.one("/v1/copilot/orgs", name="research")
    by_name = api.ok("/v1/copilot/teams", org_id="research")
    by_id = api.ok("/v1/copilot/teams", org_id=research["id"])
    assert by_name == by_id and by_name["total"] == 3
    assert {t["key"] for t in by_name["items"]} == {"research/ml", "research/nlp", "research/data"}
    assert all(t["org_id"] == research["id"] for t in by_name["items"])
    users = api.every("/v1/copilot/users")
    assert len(users) == 34 and all(u["email"].endswith("@acme.com") for u in users)
    alice = api.ok("/v1/copilot/users", email="Alice.Nguyen@acme.com")["items"]
    assert [u["identity_user_id"] for u in alice] == ["301234567890140002"]
    assert api.ok("/v1/console/users")["total"] == 31


def test_agents_and_grants(api: Api) -> None:
    agents = api.ok("/v1/copilot/agents")
    assert agents["total"] == 3 and "grants" not in agents["items"][0]
    presets = {p["code"]: p["id"] for p in api.every("/v1/copilot/guardrails/presets")}
    helpdesk = api.one("/v1/copilot/agents", name="helpdesk")
    assert helpdesk["mandatory_guardrail_preset_ids"] == [presets["pii-strict"]]
    assert helpdesk["definition_json"]["model"] == "gpt-4o-mini"
    with_grants = api.ok("/v1/copilot/agents", include_grants="true")["items"]
    assert all("grants" in a for a in with_grants)
    item = api.ok(f"/v1/copilot/agents/{helpdesk['id']}")["item"]
    assert item == api.ok("/v1/copilot/agents/helpdesk")["item"]
    grants = api.ok(f"/v1/copilot/agents/{helpdesk['id']}/grants")
    assert grants["total"] == 4 and grants["items"] == sorted(item["grants"], key=lambda g: (g["scope_type"], g["scope_key"]))
    orgs = {o["name"]: o["id"] for o in api.every("/v1/copilot/orgs")}
    dana = api.ok("/v1/copilot/users", email="dana.white@acme.com")["items"][0]
    scopes = {(g["scope_type"], g["scope_id"]) for g in grants["items"]}
    assert scopes == {("org", orgs["research"]), ("org", orgs["engineering"]), ("org", orgs["sales"]), ("user", dana["id"])}
    assert api.get("/v1/copilot/agents/nope").json() == {"detail": "Agent not found"}
    assert api.get("/v1/copilot/agents/nope/grants").json() == {"detail": "Copilot agent not found"}


def test_connections_mask_secrets(api: Api) -> None:
    connections = api.ok("/v1/copilot/connections")
    assert connections["total"] == 3
    assert all(c["secret_json"] == {"masked": True} for c in connections["items"])
    assert [c["name"] for c in api.ok("/v1/copilot/connections", connection_type="integration")["items"]] == ["salesforce"]
    assert [c["name"] for c in api.ok("/v1/copilot/connections", connection_type="MCP")["items"]] == ["github"]
    bad = api.get("/v1/copilot/connections", connection_type="ftp")
    assert bad.status_code == 400 and bad.json()["detail"] == "connection_type must be openapi|mcp|composio"
    jira = api.ok("/v1/copilot/connections/jira")["item"]
    assert jira["secret_json"] == {"masked": True} and jira["connection_type"] == "openapi"
    assert jira["config_json"]["base_url"] == "https://acme.atlassian.net"
    assert {(g["scope"], g["can_manage"]) for g in jira["grants"]} == {
        ("org:engineering", False), ("org:research", False),
        ("team:engineering/platform", True), ("user:ines.garcia@acme.com", True),
    }
    assert api.ok(f"/v1/copilot/connections/{jira['id']}/grants")["total"] == 4
    assert api.get("/v1/copilot/connections/nope").json() == {"detail": "Connection not found"}


def test_guardrail_presets_assignments_and_patterns(api: Api) -> None:
    copilot = api.every("/v1/copilot/guardrails/presets")
    assert {p["code"] for p in copilot} == {"pii-strict", "secrets-leak"}
    assert [p["code"] for p in api.every("/v1/console/guardrails/presets")] == ["console-baseline"]
    pii = next(p for p in copilot if p["code"] == "pii-strict")
    assert pii["preset_json"]["redact_replacement"] == "[REDACTED]" and len(pii["patterns"]) == 5

    assignments = api.every("/v1/copilot/guardrails/assignments")
    assert len(assignments) == 9 + 4  # copilot presets' `assign` entries, and the agents' own guardrails
    dana = api.ok("/v1/copilot/users", email="dana.white@acme.com")["items"][0]
    for scope_id in (dana["id"], "dana.white@acme.com"):
        found = api.ok("/v1/copilot/guardrails/assignments", scope_type="user", scope_id=scope_id)
        assert [(a["preset_code"], a["scope_id"]) for a in found["items"]] == [("pii-strict", dana["id"])]
    helpdesk = api.ok("/v1/copilot/guardrails/assignments", scope_type="agent", scope_id="helpdesk")["items"]
    assert sorted(a["via"] for a in helpdesk) == ["agent.guardrails", "preset.assign"]
    account = api.ok("/v1/copilot/guardrails/assignments", scope_type="account", scope_id=api.ok("/v1/accounts/acme")["item"]["account_id"])
    assert [a["preset_code"] for a in account["items"]] == ["pii-strict"]
    assert api.ok("/v1/copilot/guardrails/assignments", preset_id="secrets-leak")["total"] == 4 + 1
    missing = api.get("/v1/copilot/guardrails/assignments", scope_type="org")
    assert missing.status_code == 400 and missing.json()["detail"] == "scope_id is required when scope_type is provided"
    bad = api.get("/v1/copilot/guardrails/assignments", scope_type="galaxy", scope_id="x")
    assert bad.json()["detail"] == "scope_type must be one of: account,agent,org,team,user"
    console = api.every("/v1/console/guardrails/assignments")
    assert {a["scope"] for a in console} == {"account", "org:research", "team:engineering/sre", "user:svc-support-bot@acme.com"}

    patterns = api.ok("/v1/copilot/guardrails/patterns", guard_type="pii-strict")
    assert patterns["total"] == 5
    assert api.ok("/v1/copilot/guardrails/patterns", guard_type="pii-strict", enabled="false")["items"][0]["pattern_name"] == "iban"
    first = patterns["items"][0]
    assert api.ok(f"/v1/copilot/guardrails/patterns/{first['id']}")["item"] == first
    assert api.get("/v1/console/guardrails/patterns/" + first["id"]).json() == {"detail": "Pattern not found"}


def test_model_grants_entitlements_and_marketplace(api: Api) -> None:
    grants = api.ok("/v1/copilot/models/grants")
    assert grants["total"] == 15  # acme's copilot grants, gpt-4.1 to org:research included
    gpt4o = api.every("/v1/copilot/models/grants", model_name="gpt-4o")
    data = next(g for g in gpt4o if g["scope"] == "team:research/data")
    team = next(t for t in api.every("/v1/copilot/teams") if t["key"] == "research/data")
    assert data["access_mode"] == "deny" and data["scope_id"] == team["id"]
    account = next(g for g in api.every("/v1/copilot/models/grants") if g["scope_type"] == "account")
    assert account["scope_id"] == api.ok("/v1/accounts/acme")["item"]["account_id"] and account["model_name"] == "gpt-4o-mini"
    assert api.ok("/v1/console/models/grants")["total"] == 11

    copilot = api.ok("/v1/features/entitlements", domain="copilot")
    assert copilot["domain"] == "copilot" and copilot["total"] == 10
    console = api.ok("/v1/features/entitlements", domain="console", feature_code="image_generation")
    assert {(e["scope"], e["enabled"]) for e in console["items"]} == {("org:research", True), ("user:svc-ci@acme.com", False)}
    assert api.get("/v1/features/entitlements").json() == {"detail": "domain must be console|copilot"}

    listings = api.ok("/v1/copilot/marketplace")
    assert listings["total"] == 3 and "grants" not in listings["items"][0]
    assert api.ok("/v1/copilot/marketplace", published_only="true")["total"] == 2
    assert [i["entity_name"] for i in api.ok("/v1/copilot/marketplace", title="SALES")["items"]] == ["salesforce"]
    assert api.ok("/v1/copilot/marketplace", entity_type="agent")["total"] == 2
    salesforce = api.ok("/v1/copilot/marketplace/connection:salesforce")["item"]
    connection = api.ok("/v1/copilot/connections/salesforce")["item"]
    assert salesforce["entity_id"] == connection["id"] and salesforce["pricing_model"] == "internal_chargeback"
    assert {g["scope"] for g in salesforce["grants"]} == {"org:sales", "user:dana.white@acme.com"}
    assert api.ok(f"/v1/copilot/marketplace/{salesforce['id']}")["item"] == salesforce
    assert api.ok(f"/v1/copilot/marketplace/{salesforce['id']}/grants")["total"] == 2
    assert api.get("/v1/copilot/marketplace/agent:nope").json() == {"detail": "Marketplace listing not found"}


def test_paging_and_the_cap(api: Api) -> None:
    everyone = api.every("/v1/copilot/users")
    page = api.ok("/v1/copilot/users", limit=5, offset=5)
    assert page["total"] == 34 and page["items"] == everyone[5:10]
    assert api.ok("/v1/copilot/users", offset=30)["items"] == everyone[30:]
    assert len(api.ok("/v1/copilot/users")["items"]) == 34
    capped = api.ok("/v1/copilot/users", account="globex", limit=5000)
    assert capped["total"] == BIG_DIRECTORY + 2 and len(capped["items"]) == 1000
    assert len(api.ok("/v1/copilot/users", account="globex")["items"]) == 100
    rest = api.ok("/v1/copilot/users", account="globex", limit=1000, offset=1000)
    assert len(rest["items"]) == BIG_DIRECTORY + 2 - 1000
    assert api.get("/v1/copilot/users", offset=-1).status_code == 422
    assert api.ok("/v1/copilot/models/effective", email="chen.wei@acme.com", limit=1)["total"] == 5  # gpt-4.1 through org:research among them


def test_another_accounts_ids_are_not_found(api: Api) -> None:
    def first(path: str, **params: Any) -> dict[str, Any]:
        return api.ok(path, account="globex", **params)["items"][0]

    agent = first("/v1/copilot/agents")
    connection = first("/v1/copilot/connections")
    listing = first("/v1/copilot/marketplace")
    pattern = first("/v1/copilot/guardrails/patterns")
    org = first("/v1/copilot/orgs")
    team = first("/v1/copilot/teams")
    user = api.ok("/v1/copilot/users", account="globex", email="hank@globex.com")["items"][0]
    for path, params, detail in [
        (f"/v1/copilot/agents/{agent['id']}", {}, "Agent not found"),
        (f"/v1/copilot/agents/{agent['id']}/grants", {}, "Copilot agent not found"),
        (f"/v1/copilot/connections/{connection['id']}", {}, "Connection not found"),
        (f"/v1/copilot/connections/{connection['id']}/grants", {}, "Connection not found"),
        (f"/v1/copilot/marketplace/{listing['id']}", {}, "Marketplace listing not found"),
        (f"/v1/copilot/marketplace/{listing['id']}/grants", {}, "Marketplace listing not found"),
        (f"/v1/copilot/guardrails/patterns/{pattern['id']}", {}, "Pattern not found"),
        ("/v1/copilot/teams", {"org_id": org["id"]}, "copilot org not found"),
        ("/v1/copilot/guardrails/assignments", {"scope_type": "user", "scope_id": user["id"]}, "copilot user not found"),
        ("/v1/copilot/guardrails/assignments", {"scope_type": "agent", "scope_id": agent["id"]}, "copilot agent not found"),
        ("/v1/copilot/models/effective", {"user_id": user["id"], "model_name": "gpt-4o"}, "copilot user not found"),
        ("/v1/copilot/models/effective", {"email": "hank@globex.com"}, "copilot user not found"),
        ("/v1/copilot/guardrails/effective", {"team_id": team["id"]}, "copilot team not found"),
        ("/v1/copilot/guardrails/effective", {"agent_id": agent["id"]}, "copilot agent not found"),
        ("/v1/features/effective", {"domain": "copilot", "org_id": org["id"]}, "copilot org not found"),
        ("/v1/copilot/marketplace/discover", {"user_id": user["id"]}, "copilot user not found"),
    ]:
        response = api.get(path, **params)
        assert (response.status_code, response.json()) == (404, {"detail": detail}), path
    # acme's lists hold none of globex's rows, though the names are the same
    assert [a["definition_json"].get("system_prompt") for a in api.every("/v1/copilot/agents") if a["name"] == "helpdesk"] != ["Globex only"]
    assert all(p["name"] != "Globex PII" for p in api.every("/v1/copilot/guardrails/presets"))
    assert api.ok("/v1/copilot/agents/helpdesk", account="globex")["item"]["id"] == agent["id"]


def test_guard_texts(api: Api) -> None:
    for path in ("/v1/copilot/orgs", "/v1/console/users", "/v1/copilot/agents", "/v1/copilot/models/effective", "/v1/features/effective"):
        for kwargs in ({"token": None, "account": None}, {"account": None}, {"account": "no-such-account"}):
            response = api.get(path, **kwargs)
            assert (response.status_code, response.json()) == (403, {"detail": "Account context required"}), (path, kwargs)
    for path in ("/v1/accounts", "/v1/accounts/acme", "/v1/accounts/acme/zitadel/provision/plan"):
        for token in (None, "not-the-master-key"):
            response = api.get(path, token=token)
            assert (response.status_code, response.json()) == (403, {"detail": "Super admin access required"}), path


def endpoints(api: Api) -> list[str]:
    jira = api.ok("/v1/copilot/connections/jira")["item"]["id"]
    listing = api.ok("/v1/copilot/marketplace")["items"][0]["id"]
    paths = [
        "/v1/accounts", "/v1/accounts/acme", "/v1/accounts/acme/admins", "/v1/accounts/acme/sso",
        "/v1/accounts/acme/feature-pack", "/v1/accounts/acme/console-model-policy",
        "/v1/accounts/acme/zitadel/config", "/v1/accounts/acme/zitadel/provision/plan",
        "/v1/accounts/globex", "/v1/accounts/globex/sso",
        "/v1/copilot/agents?include_grants=true", "/v1/copilot/agents/helpdesk", "/v1/copilot/agents/helpdesk/grants",
        "/v1/copilot/connections", f"/v1/copilot/connections/{jira}", f"/v1/copilot/connections/{jira}/grants",
        "/v1/copilot/connections/github", "/v1/copilot/connections/salesforce",
        "/v1/features/entitlements?domain=copilot", "/v1/features/effective?domain=copilot&email=dana.white@acme.com",
        "/v1/copilot/marketplace?include_grants=true", f"/v1/copilot/marketplace/{listing}",
        f"/v1/copilot/marketplace/{listing}/grants", "/v1/copilot/marketplace/discover?email=dana.white@acme.com",
        "/v1/copilot/guardrails/effective?email=chen.wei@acme.com&agent_id=helpdesk",
    ]
    for domain in ("console", "copilot"):
        paths += [
            f"/v1/{domain}/orgs", f"/v1/{domain}/teams", f"/v1/{domain}/users",
            f"/v1/{domain}/models/grants", f"/v1/{domain}/models/effective?email=admin@acme.com",
            f"/v1/{domain}/guardrails/presets", f"/v1/{domain}/guardrails/assignments", f"/v1/{domain}/guardrails/patterns",
        ]
    return paths


def test_no_secret_reaches_a_response(api: Api) -> None:
    for path in endpoints(api):
        response = api.get(path)
        assert response.status_code == 200, (path, response.text)
        assert CANARY not in response.text.lower(), path
        assert "${file:" not in response.text and "${env:" not in response.text, path
