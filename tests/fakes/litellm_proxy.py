"""A LiteLLM proxy to adopt: a `config.yaml` and its database (`litellm_schema.sql`), with what
`cockpit import litellm` must handle: `os.environ/` keys and endpoints, a literal key, two
deployments of one model name (one weighted), rpm/tpm, per-token prices, fallbacks (one of a model
not in model_list, one closing a cycle), the master key in general_settings, a proxy-wide monthly
budget, organizations, teams (one in no organization), users with and without e-mail, model lists
(empty = every model), org, team and user budgets and rate limits, and keys (one rate-limited).

Every secret value is in `SECRETS`, so a test can grep everything the import wrote for them.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

SCHEMA = Path(__file__).with_name("litellm_schema.sql")
OPENAI_LITERAL_KEY = "sk-lit-3vQ8nW2xR7tY5uI1"
MASTER_KEY = "sk-master-9Lp4Hc2Vb7Nm"
SALT_KEY = "sk-salt-5Jd8Fw1Qz6Xr"
KEY_TOKEN = "88f0c3e1a9b7d2e4f6a8c0b2d4e6f8a0c2e4f6a8b0d2e4f6a8c0b2d4e6f8a0c2"
PASSWORD_HASH = "pbkdf2-sha256$nw$Qm9fY2FwdGFpbg"
SECRETS = (OPENAI_LITERAL_KEY, MASTER_KEY, SALT_KEY, KEY_TOKEN, PASSWORD_HASH)

CONFIG = f"""\
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-eu
      api_base: os.environ/AZURE_API_BASE_EU
      api_key: os.environ/AZURE_API_KEY_EU
      api_version: "2024-06-01"
      rpm: 600
      weight: 3
    model_info:
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-us
      api_base: https://us.example-azure.com
      api_key: os.environ/AZURE_API_KEY_US
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: {OPENAI_LITERAL_KEY}
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
  - model_name: claude-haiku
    litellm_params:
      model: anthropic/claude-3-5-haiku-latest
      api_key: os.environ/ANTHROPIC_API_KEY
      tpm: 100000
    model_info:
      input_cost_per_token: 0.0000008
      output_cost_per_token: 0.000004

litellm_settings:
  drop_params: true
  max_budget: 2500
  budget_duration: 30d

router_settings:
  routing_strategy: simple-shuffle
  fallbacks:
    - gpt-4o: [gpt-4o-mini, o1-preview]
    - claude-haiku: [gpt-4o]
    - gpt-4o-mini: [claude-haiku]

general_settings:
  master_key: {MASTER_KEY}
  salt_key: {SALT_KEY}
  database_url: os.environ/DATABASE_URL
"""

_ROWS = [
    ("LiteLLM_BudgetTable", {"budget_id": "b-eng", "max_budget": 800, "budget_duration": "30d", "rpm_limit": 100, "created_by": "admin", "updated_by": "admin"}),
    ("LiteLLM_BudgetTable", {"budget_id": "b-mem", "max_budget": 20, "created_by": "admin", "updated_by": "admin"}),
    ("LiteLLM_OrganizationTable", {"organization_id": "o-eng", "organization_alias": "Engineering", "budget_id": "b-eng", "models": [], "created_by": "admin", "updated_by": "admin"}),
    ("LiteLLM_TeamTable", {"team_id": "t-plat", "team_alias": "platform", "organization_id": "o-eng", "admins": ["u-ann"],
                           "members_with_roles": [{"role": "admin", "user_id": "u-ann", "user_email": "ann@initech.com"}, {"role": "user", "user_id": "u-ben", "user_email": "ben@initech.com"}],
                           "models": ["gpt-4o", "claude-haiku"], "max_budget": 300, "budget_duration": "30d", "tpm_limit": 50000}),
    ("LiteLLM_TeamTable", {"team_id": "t-data", "team_alias": "Data Science", "organization_id": "o-eng", "models": []}),
    ("LiteLLM_TeamTable", {"team_id": "t-ops", "team_alias": "ops", "models": ["gpt-4o-mini", "o1-preview"], "blocked": True}),
    ("LiteLLM_UserTable", {"user_id": "u-ann", "user_email": "Ann@Initech.com", "user_alias": "Ann", "user_role": "proxy_admin", "teams": ["t-plat"], "password": PASSWORD_HASH}),
    ("LiteLLM_UserTable", {"user_id": "u-ben", "user_email": "ben@initech.com", "user_role": "internal_user", "teams": ["t-plat", "t-data"], "models": ["gpt-4o"], "max_budget": 50, "budget_duration": "7d", "rpm_limit": 10}),
    ("LiteLLM_UserTable", {"user_id": "u-cat", "user_email": "cat@initech.com", "user_role": "internal_user", "teams": ["t-ops"], "models": ["gpt-4o-mini", "claude-haiku"]}),
    ("LiteLLM_UserTable", {"user_id": "u-dan", "user_email": "dan@initech.com", "user_role": "internal_user"}),
    ("LiteLLM_UserTable", {"user_id": "default_user_id", "user_role": "proxy_admin"}),
    ("LiteLLM_TeamMembership", {"user_id": "u-ben", "team_id": "t-data", "budget_id": "b-mem"}),
    ("LiteLLM_OrganizationMembership", {"user_id": "u-ann", "organization_id": "o-eng", "user_role": "org_admin"}),
    ("LiteLLM_OrganizationMembership", {"user_id": "u-ben", "organization_id": "o-eng", "user_role": "internal_user"}),
    ("LiteLLM_VerificationToken", {"token": KEY_TOKEN, "key_name": "sk-...a0c2", "key_alias": "ann-laptop", "user_id": "u-ann", "team_id": "t-plat", "rpm_limit": 5}),
    ("LiteLLM_VerificationToken", {"token": "hashed-2", "key_alias": "ci", "team_id": "t-ops"}),
    ("LiteLLM_ProxyModelTable", {"model_id": "db-1", "model_name": "gemini-flash", "litellm_params": {"model": "gemini/gemini-2.0-flash", "api_key": "gAAAAB-encrypted"}, "created_by": "admin", "updated_by": "admin"}),
]


def write_config(path: Path) -> Path:
    path.write_text(CONFIG, encoding="utf-8")
    return path


def build(url: str) -> None:
    """Create LiteLLM's tables in the (empty) database at `url` and fill them."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SCHEMA.read_text(encoding="utf-8"))
        for table, values in _ROWS:
            values = {k: json.dumps(v) if isinstance(v, (dict, list)) and k not in ("models", "admins", "teams") else v for k, v in values.items()}
            columns = ", ".join(f'"{c}"' for c in values)
            marks = ", ".join(["%s"] * len(values))
            connection.execute(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', list(values.values()))


USER_IDS = {"ann@initech.com": "u-ann", "ben@initech.com": "u-ben", "cat@initech.com": "u-cat", "dan@initech.com": "u-dan"}


def allowed_models(user: str, catalog: set[str]) -> set[str]:
    """What LiteLLM let the fixture's users call, by its rules for these lists: a key of the user
    in a team may call the team's models (empty = all), narrowed by the user's own list."""
    teams = {"ann@initech.com": [{"gpt-4o", "claude-haiku"}], "ben@initech.com": [{"gpt-4o", "claude-haiku"}, set(catalog)],
             "cat@initech.com": [{"gpt-4o-mini"}], "dan@initech.com": []}[user]
    own = {"ben@initech.com": {"gpt-4o"}, "cat@initech.com": {"gpt-4o-mini", "claude-haiku"}}.get(user, set(catalog))
    reachable = set().union(*teams) if teams else set(catalog)
    return reachable & own


def rate_limits(user: str) -> set[tuple[str, int | None, int | None]]:
    """The (scope, rpm, tpm) limits of the fixture's users: their org's (its budget b-eng), their
    teams' and their own, as the import writes them."""
    org, platform, ben = ("org:engineering", 100, None), ("team:engineering/platform", None, 50000), ("user:ben@initech.com", 10, None)
    return {"ann@initech.com": {org, platform}, "ben@initech.com": {org, platform, ben}}.get(user, set())
