"""A console-cockpit database to adopt: the old tables (`console_cockpit_schema.sql`) filled with a
realistic tenant that has every quirk `cockpit import console-cockpit` must handle.

`Northwind Labs` (a name that is not a config name) has: the default `global` org; two agents and
two connections with one name; an agent-scope guardrail assignment and one left behind by a
deleted agent; custom patterns, one RE2 cannot run; duplicate and contradictory model grants;
grants on scopes that no longer exist; a grant of a model missing from the catalog; a user in two
teams whose teams decide differently (membership expansion); a console model policy that cuts a
granted model (the ceiling); an entitlement outside the feature pack; two active plans, a cycle
label Cockpit lacks, a float equal split, two overrides for one scope, an override without an
allocation, an allocation that breaks nesting and one that breaks capacity, a rollover pool; a
team admin in the admin table; `max_budget`/`spend`; users without e-mail or in capital letters;
duplicate marketplace listings and one of a deleted agent; two catalog rows of one model (its
deployments, one with rpm); SSO, connection and model secrets.
`globex` is a second, small account.

Every secret value is in `SECRETS`, so a test can grep everything the import wrote for them.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

SCHEMA = Path(__file__).with_name("console_cockpit_schema.sql")
SSO_SECRET = "sek-sso-7Hq2LmW9vXc4"
GITHUB_KEY = "sek-composio-Z8rT1uVb6N"
MCP_TOKEN = "sek-mcp-Pp3Kd0Yw5Jf"
JIRA_PASSWORD = "sek-jira-Qm7Rx2Ls8Ve"
MISTRAL_KEY = "sek-mistral-Hn4Tz9Cq1Wb"
SECRETS = (SSO_SECRET, GITHUB_KEY, MCP_TOKEN, JIRA_PASSWORD, MISTRAL_KEY)

NW = "acc-nw-0001"
GLOBEX = "acc-gx-0002"
_clock = itertools.count()
_START = datetime(2026, 1, 5, 9, 0, 0)


def _row(table: str, **values: Any) -> tuple[str, dict[str, Any]]:
    """One insert; rows get increasing created_at in the order they are listed."""
    if table != "LiteLLM_Config":
        values.setdefault("created_at", _START + timedelta(minutes=next(_clock)))
    return table, {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in values.items()}


def rows() -> list[tuple[str, dict[str, Any]]]:
    r = _row
    return [
        # --- accounts ------------------------------------------------------------------------
        r("Alchemi_AccountTable", account_id=NW, account_name="Northwind Labs", account_alias="Northwind",
          domain="northwind.io", max_budget=5000.0, spend=123.4, created_by="super_admin",
          metadata={
              "feature_pack": {"features": ["create_agents", "image_generation"], "config": {}},
              "console_model_policy": {"allow_models": ["gpt-4o", "claude-sonnet"], "deny_models": []},
              "zitadel": {"enabled": True, "issuer": "https://id.northwind.io/", "project_id": "301234",
                          "organization_id": "301100", "audience": "nw-console",
                          "role_mappings": {"account_admin": "nw_account_admin", "end_user": "nw_end_user"},
                          "account_id_claim": "alchemi:account_id", "product_domains_claim": "product_domains_allowed"},
              "ui_theme": "dark",
          }),
        r("Alchemi_AccountTable", account_id=GLOBEX, account_name="globex", domain="globex.com", created_by="super_admin"),
        r("Alchemi_AccountAdminTable", id="adm-1", account_id=NW, user_email="admin@northwind.io"),
        r("Alchemi_AccountAdminTable", id="adm-2", account_id=NW, user_email="Lead@Northwind.io", role="copilot_team_admin"),
        r("Alchemi_AccountAdminTable", id="adm-3", account_id=NW, user_email="fin@northwind.io", role="billing"),
        r("Alchemi_AccountSSOConfig", id="sso-1", account_id=NW, sso_provider="generic", enabled=True,
          sso_settings={"generic_client_id": "nw-console", "generic_client_secret": SSO_SECRET,
                        "generic_authorization_endpoint": "https://id.northwind.io/oauth/v2/authorize"}),
        r("Alchemi_AccountAllocationTable", id="alloc-1", account_id=NW, monthly_credits=1000, overflow_limit=100, credit_factor=1.25),
        # --- copilot directory -------------------------------------------------------------------
        r("Alchemi_CopilotOrgTable", id="co-global", account_id=NW, name="global", description="Default global organization", is_default_global=True),
        r("Alchemi_CopilotOrgTable", id="co-research", account_id=NW, name="Research", description="Research division"),
        r("Alchemi_CopilotOrgTable", id="co-sales", account_id=NW, name="sales"),
        r("Alchemi_CopilotTeamTable", id="ct-ml", account_id=NW, org_id="co-research", name="ML"),
        r("Alchemi_CopilotTeamTable", id="ct-nlp", account_id=NW, org_id="co-research", name="nlp"),
        r("Alchemi_CopilotTeamTable", id="ct-emea", account_id=NW, org_id="co-sales", name="emea"),
        r("Alchemi_CopilotUserTable", id="cu-alice", account_id=NW, email="alice@northwind.io", display_name="Alice", identity_user_id="z-alice"),
        r("Alchemi_CopilotUserTable", id="cu-bob", account_id=NW, email="bob@northwind.io"),
        r("Alchemi_CopilotUserTable", id="cu-carol", account_id=NW, email="carol@northwind.io"),
        r("Alchemi_CopilotUserTable", id="cu-dave", account_id=NW, email="dave@northwind.io"),
        r("Alchemi_CopilotUserTable", id="cu-erin", account_id=NW, email="Erin@Northwind.io", display_name="Erin"),
        r("Alchemi_CopilotUserTable", id="cu-ghost", account_id=NW, identity_user_id="z-ghost"),
        r("Alchemi_CopilotUserTable", id="cu-frank", account_id=NW, email="frank@northwind.io", status="suspended"),
        r("Alchemi_CopilotTeamMembershipTable", id="cm-1", account_id=NW, team_id="ct-ml", user_id="cu-alice", role="admin"),
        r("Alchemi_CopilotTeamMembershipTable", id="cm-2", account_id=NW, team_id="ct-nlp", user_id="cu-alice"),
        r("Alchemi_CopilotTeamMembershipTable", id="cm-3", account_id=NW, team_id="ct-ml", user_id="cu-bob"),
        r("Alchemi_CopilotTeamMembershipTable", id="cm-4", account_id=NW, team_id="ct-emea", user_id="cu-carol", role="lead"),
        r("Alchemi_CopilotTeamMembershipTable", id="cm-5", account_id=NW, team_id="ct-nlp", user_id="cu-erin"),
        r("Alchemi_CopilotTeamMembershipTable", id="cm-6", account_id=NW, team_id="ct-emea", user_id="cu-frank"),
        r("Alchemi_CopilotTeamMembershipTable", id="cm-7", account_id=NW, team_id="ct-ml", user_id="cu-ghost"),
        # --- console directory -------------------------------------------------------------------
        r("Alchemi_ConsoleOrgTable", id="no-ops", account_id=NW, name="ops"),
        r("Alchemi_ConsoleTeamTable", id="nt-sre", account_id=NW, org_id="no-ops", name="SRE On-Call"),
        r("Alchemi_ConsoleUserTable", id="nu-carol", account_id=NW, email="carol@northwind.io"),
        r("Alchemi_ConsoleUserTable", id="nu-gina", account_id=NW, email="gina@northwind.io"),
        r("Alchemi_ConsoleTeamMembershipTable", id="nm-1", account_id=NW, team_id="nt-sre", user_id="nu-carol"),
        r("Alchemi_ConsoleTeamMembershipTable", id="nm-2", account_id=NW, team_id="nt-sre", user_id="nu-gina"),
        # --- guardrails ----------------------------------------------------------------------------
        r("Alchemi_CopilotGuardrailPresetTable", id="gp-pii", account_id=NW, code="pii", name="PII",
          preset_json={"config": {"mask": True}, "custom_patterns": [
              {"id": "pat-1", "pattern_name": "ssn", "pattern_regex": r"\b\d{3}-\d{2}-\d{4}\b", "pattern_type": "block", "enabled": True, "is_system": False},
              {"id": "pat-2", "pattern_name": "Credit Card", "pattern_regex": r"\b(?:\d[ -]?){13,16}\b", "pattern_type": "detect", "action": "mask", "enabled": True, "is_system": True},
              {"id": "pat-3", "pattern_name": "password-nearby", "pattern_regex": r"(?=.*password)\w+", "pattern_type": "block", "enabled": True, "is_system": False},
          ]}),
        r("Alchemi_CopilotGuardrailPresetTable", id="gp-toxic", account_id=NW, code="toxic", name="TOXIC", preset_json={"config": {}, "custom_patterns": []}),
        r("Alchemi_CopilotGuardrailAssignmentTable", id="ga-1", account_id=NW, preset_id="gp-pii", scope_type="account", scope_id=NW),
        r("Alchemi_CopilotGuardrailAssignmentTable", id="ga-2", account_id=NW, preset_id="gp-toxic", scope_type="team", scope_id="ct-ml"),
        r("Alchemi_CopilotGuardrailAssignmentTable", id="ga-3", account_id=NW, preset_id="gp-toxic", scope_type="team", scope_id="ct-ml"),
        r("Alchemi_CopilotGuardrailAssignmentTable", id="ga-4", account_id=NW, preset_id="gp-pii", scope_type="agent", scope_id="ag-help-1"),
        r("Alchemi_CopilotGuardrailAssignmentTable", id="ga-5", account_id=NW, preset_id="gp-toxic", scope_type="agent", scope_id="ag-help-2"),
        r("Alchemi_CopilotGuardrailAssignmentTable", id="ga-6", account_id=NW, preset_id="gp-toxic", scope_type="agent", scope_id="ag-deleted"),
        r("Alchemi_CopilotGuardrailAssignmentTable", id="ga-7", account_id=NW, preset_id="gp-toxic", scope_type="user", scope_id="cu-deleted"),
        # --- agents and connections ------------------------------------------------------------------
        r("Alchemi_CopilotAgentTable", id="ag-help-1", account_id=NW, name="Helpdesk", description="Answers staff questions",
          definition_json={"system_prompt": "Be kind.\nCite the wiki.", "tools": ["search"]}),
        r("Alchemi_CopilotAgentTable", id="ag-help-2", account_id=NW, name="helpdesk", definition_json={"system_prompt": "Be brief."}),
        r("Alchemi_CopilotAgentGrantTable", id="agg-1", account_id=NW, agent_id="ag-help-1", scope_type="team", scope_id="ct-ml"),
        r("Alchemi_CopilotAgentGrantTable", id="agg-2", account_id=NW, agent_id="ag-help-1", scope_type="team", scope_id="ct-nlp"),
        r("Alchemi_CopilotAgentGrantTable", id="agg-3", account_id=NW, agent_id="ag-help-2", scope_type="user", scope_id="cu-dave"),
        r("Alchemi_CopilotAgentGrantTable", id="agg-4", account_id=NW, agent_id="ag-help-1", scope_type="team", scope_id="ct-deleted"),
        r("Alchemi_CopilotConnectionTable", id="cn-gh-1", account_id=NW, connection_type="composio", name="GitHub",
          config_json={"auth_mode": "api_key", "toolkit": "github"}, secret_json={"api_key": GITHUB_KEY}),
        r("Alchemi_CopilotConnectionTable", id="cn-gh-2", account_id=NW, connection_type="mcp", name="GitHub",
          credential_visibility="self_managed", allow_user_self_manage=True,
          config_json={"url": "https://mcp.northwind.io/github"}, secret_json={"token": MCP_TOKEN}),
        r("Alchemi_CopilotConnectionTable", id="cn-jira", account_id=NW, connection_type="openapi", name="jira",
          config_json={"spec_url": "https://jira.northwind.io/openapi.json"}, secret_json={"basic": {"user": "bot", "password": JIRA_PASSWORD}}),
        r("Alchemi_CopilotConnectionGrantTable", id="cng-1", account_id=NW, connection_id="cn-gh-1", scope_type="org", scope_id="co-research", can_manage=True),
        r("Alchemi_CopilotConnectionGrantTable", id="cng-2", account_id=NW, connection_id="cn-gh-2", scope_type="user", scope_id="cu-bob"),
        r("Alchemi_CopilotConnectionGrantTable", id="cng-3", account_id=NW, connection_id="cn-jira", scope_type="team", scope_id="ct-nlp"),
        # --- model grants -----------------------------------------------------------------------------
        r("Alchemi_ModelGrantTable", id="mg-1", account_id=NW, domain="copilot", model_name="gpt-4o", scope_type="account", scope_id=NW),
        r("Alchemi_ModelGrantTable", id="mg-2", account_id=NW, domain="copilot", model_name="gpt-4o", scope_type="account", scope_id=NW),
        r("Alchemi_ModelGrantTable", id="mg-3", account_id=NW, domain="copilot", model_name="gpt-4o", scope_type="user", scope_id="cu-bob", access_mode="deny"),
        r("Alchemi_ModelGrantTable", id="mg-4", account_id=NW, domain="copilot", model_name="claude-sonnet", scope_type="team", scope_id="ct-ml"),
        r("Alchemi_ModelGrantTable", id="mg-5", account_id=NW, domain="copilot", model_name="claude-sonnet", scope_type="team", scope_id="ct-nlp", access_mode="deny"),
        r("Alchemi_ModelGrantTable", id="mg-6", account_id=NW, domain="copilot", model_name="llama-local", scope_type="team", scope_id="ct-ml"),
        r("Alchemi_ModelGrantTable", id="mg-7", account_id=NW, domain="copilot", model_name="mistral-large", scope_type="team", scope_id="ct-deleted"),
        r("Alchemi_ModelGrantTable", id="mg-8", account_id=NW, domain="console", model_name="gpt-4o", scope_type="org", scope_id="no-ops"),
        r("Alchemi_ModelGrantTable", id="mg-9", account_id=NW, domain="console", model_name="mistral-large", scope_type="team", scope_id="nt-sre"),
        r("Alchemi_ModelGrantTable", id="mg-10", account_id=NW, domain="console", model_name="claude-sonnet", scope_type="user", scope_id="nu-gina"),
        r("Alchemi_ModelGrantTable", id="mg-11", account_id=NW, domain="console", model_name="claude-sonnet", scope_type="user", scope_id="nu-gina", access_mode="deny"),
        # --- features -------------------------------------------------------------------------------
        r("Alchemi_FeatureEntitlementTable", id="fe-1", account_id=NW, domain="copilot", feature_code="image_generation", scope_type="team", scope_id="ct-ml", config_json={"size": 1024}),
        r("Alchemi_FeatureEntitlementTable", id="fe-2", account_id=NW, domain="copilot", feature_code="image_generation", scope_type="user", scope_id="cu-bob", enabled=False),
        r("Alchemi_FeatureEntitlementTable", id="fe-4", account_id=NW, domain="Copilot", feature_code="create_agents", scope_type="account", scope_id=NW, enabled=False),
        r("Alchemi_FeatureEntitlementTable", id="fe-3", account_id=NW, domain="copilot", feature_code="Voice Mode", scope_type="user", scope_id="cu-dave"),
        # --- marketplace ------------------------------------------------------------------------------
        r("Alchemi_CopilotMarketplaceTable", id="mk-1", account_id=NW, entity_type="agent", entity_id="ag-help-1", title="Helpdesk (old)"),
        r("Alchemi_CopilotMarketplaceTable", id="mk-2", account_id=NW, entity_type="agent", entity_id="ag-help-1", title="Helpdesk", installation_count=42, rating_avg=4.5, rating_count=8, author="IT"),
        r("Alchemi_CopilotMarketplaceTable", id="mk-3", account_id=NW, entity_type="connection", entity_id="cn-gh-1", title="GitHub"),
        r("Alchemi_CopilotMarketplaceTable", id="mk-4", account_id=NW, entity_type="agent", entity_id="ag-deleted", title="Old bot"),
        r("Alchemi_CopilotMarketplaceTable", id="mk-5", account_id=NW, entity_type="connection", entity_id="cn-jira", title="Jira", is_published=False),
        r("Alchemi_CopilotMarketplaceGrantTable", id="mkg-1", account_id=NW, marketplace_id="mk-1", scope_type="org", scope_id="co-research"),
        r("Alchemi_CopilotMarketplaceGrantTable", id="mkg-2", account_id=NW, marketplace_id="mk-2", scope_type="team", scope_id="ct-ml"),
        r("Alchemi_CopilotMarketplaceGrantTable", id="mkg-3", account_id=NW, marketplace_id="mk-2", scope_type="team", scope_id="ct-deleted"),
        # --- budgets ----------------------------------------------------------------------------------
        r("Alchemi_CopilotBudgetPlanTable", id="bp-old", account_id=NW, name="FY25 Q4", cycle="weekly"),
        r("Alchemi_CopilotBudgetPlanTable", id="bp-q1", account_id=NW, name="fy26-q1"),
        r("Alchemi_CopilotBudgetAllocationTable", id="ba-0", account_id=NW, plan_id="bp-old", scope_type="org", scope_id="co-research", allocated_credits=100),
        r("Alchemi_CopilotBudgetAllocationTable", id="ba-1", account_id=NW, plan_id="bp-q1", scope_type="org", scope_id="co-research", allocated_credits=600, overflow_cap=50),
        r("Alchemi_CopilotBudgetAllocationTable", id="ba-2", account_id=NW, plan_id="bp-q1", scope_type="team", scope_id="ct-ml", allocated_credits=200 / 3, source="equal"),
        r("Alchemi_CopilotBudgetAllocationTable", id="ba-3", account_id=NW, plan_id="bp-q1", scope_type="team", scope_id="ct-nlp", allocated_credits=200 / 3, source="equal"),
        r("Alchemi_CopilotBudgetAllocationTable", id="ba-4", account_id=NW, plan_id="bp-q1", scope_type="team", scope_id="ct-emea", allocated_credits=200 / 3, source="equal"),
        r("Alchemi_CopilotBudgetAllocationTable", id="ba-5", account_id=NW, plan_id="bp-q1", scope_type="user", scope_id="cu-bob", allocated_credits=500),
        r("Alchemi_CopilotBudgetAllocationTable", id="ba-6", account_id=NW, plan_id="bp-q1", scope_type="user", scope_id="cu-dave", allocated_credits=300),
        r("Alchemi_CopilotBudgetAllocationTable", id="ba-7", account_id=NW, plan_id="bp-q1", scope_type="pool", scope_id="pool", allocated_credits=150, source="cycle_rollover"),
        r("Alchemi_CopilotBudgetAllocationTable", id="ba-8", account_id=NW, plan_id="bp-q1", scope_type="team", scope_id="ct-deleted", allocated_credits=10),
        r("Alchemi_CopilotBudgetOverrideTable", id="bo-1", account_id=NW, plan_id="bp-q1", scope_type="team", scope_id="ct-ml", override_credits=80, reason="launch"),
        r("Alchemi_CopilotBudgetOverrideTable", id="bo-2", account_id=NW, plan_id="bp-q1", scope_type="team", scope_id="ct-ml", override_credits=90, reason="launch, revised"),
        r("Alchemi_CopilotBudgetOverrideTable", id="bo-3", account_id=NW, plan_id="bp-q1", scope_type="user", scope_id="cu-carol", override_credits=5),
        # --- runtime rows the import leaves alone ----------------------------------------------------
        r("Alchemi_CopilotUsageLedgerTable", id="ul-1", account_id=NW, user_id="cu-bob", model_name="gpt-4o", raw_cost=1.2, credit_factor=1.25, credits_incurred=1.5),
        r("LiteLLM_Config", param_name="alchemi_zitadel_onboarding_defaults", param_value={"project_id": "301234"}),
        # --- the catalog --------------------------------------------------------------------------------
        r("LiteLLM_ProxyModelTable", model_id="m-gpt4o", model_name="gpt-4o",
          litellm_params={"model": "azure/gpt-4o-prod", "api_base": "os.environ/NW_AZURE_API_BASE", "api_key": "os.environ/AZURE_OPENAI_API_KEY", "api_version": "2024-06-01"},
          model_info={"display_name": "GPT-4o", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "sort_order": 10, "capability": "chat"}),
        r("LiteLLM_ProxyModelTable", model_id="m-claude", model_name="claude-sonnet",
          litellm_params={"model": "anthropic/claude-sonnet-4", "api_key": "os.environ/ANTHROPIC_API_KEY"},
          model_info={"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05, "cache_read_input_token_cost": 3e-07}),
        r("LiteLLM_ProxyModelTable", model_id="m-claude-2", model_name="claude-sonnet",
          litellm_params={"model": "anthropic/claude-sonnet-4", "api_key": "os.environ/ANTHROPIC_API_KEY_2", "rpm": 500},
          model_info={"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05, "cache_read_input_token_cost": 3e-07}),
        r("LiteLLM_ProxyModelTable", model_id="m-mistral", model_name="mistral-large",
          litellm_params={"model": "mistral/mistral-large-latest", "api_key": MISTRAL_KEY, "api_base": "https://api.mistral.ai/v1"},
          model_info={"input_cost_per_token": 2e-06, "output_cost_per_token": 6e-06}),
        r("LiteLLM_ProxyModelTable", model_id="m-titan", model_name="titan",
          litellm_params={"model": "bedrock/amazon.titan-text-express-v1", "api_key": "os.environ/AWS_SECRET_ACCESS_KEY"},
          model_info={"input_cost_per_token": 2e-07, "output_cost_per_token": 6e-07, "is_active": False}),
        r("LiteLLM_ProxyModelTable", model_id="m-private", model_name="nw-private", account_id=NW,
          litellm_params={"model": "openai/nw-ft-1", "api_key": "os.environ/NW_FT_KEY"}, model_info={}),
        # --- globex: small and plain -----------------------------------------------------------------------
        r("Alchemi_CopilotOrgTable", id="gx-global", account_id=GLOBEX, name="global", is_default_global=True),
        r("Alchemi_CopilotUserTable", id="gx-hank", account_id=GLOBEX, email="hank@globex.com"),
        r("Alchemi_ModelGrantTable", id="gx-mg", account_id=GLOBEX, domain="copilot", model_name="gpt-4o", scope_type="user", scope_id="gx-hank"),
    ]


def build(url: str) -> None:
    """Create the old tables in the (empty) database at `url` and fill them."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SCHEMA.read_text(encoding="utf-8"))
        for table, values in rows():
            columns = ", ".join(f'"{c}"' for c in values)
            marks = ", ".join(["%s"] * len(values))
            connection.execute(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', list(values.values()))
