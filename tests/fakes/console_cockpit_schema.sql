-- The tables of console-cockpit (the system Cockpit re-imagines) that `cockpit import
-- console-cockpit` reads, written from its storage catalogue: every id is TEXT, every timestamp
-- TIMESTAMP(3) defaulting to now. Unique keys and cascading foreign keys are the old system's,
-- and so are the missing ones (model grants, overrides, guardrail assignments and marketplace
-- listings have no unique key; marketplace grants no foreign key).

CREATE TABLE "Alchemi_AccountTable" (
    account_id TEXT PRIMARY KEY,
    account_name TEXT NOT NULL UNIQUE,
    account_alias TEXT,
    domain TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'active',
    metadata JSONB NOT NULL DEFAULT '{}',
    max_budget DOUBLE PRECISION,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    created_by TEXT,
    updated_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE INDEX ON "Alchemi_AccountTable" (status);

CREATE TABLE "Alchemi_AccountAdminTable" (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES "Alchemi_AccountTable" (account_id),
    user_email TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'account_admin',
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    created_by TEXT,
    updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (account_id, user_email)
);

CREATE TABLE "Alchemi_AccountSSOConfig" (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE REFERENCES "Alchemi_AccountTable" (account_id),
    sso_provider TEXT,
    sso_settings JSONB NOT NULL DEFAULT '{}',
    enabled BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    updated_at TIMESTAMP(3) NOT NULL DEFAULT now()
);

CREATE TABLE "Alchemi_AccountAllocationTable" (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE REFERENCES "Alchemi_AccountTable" (account_id) ON DELETE CASCADE,
    monthly_credits DOUBLE PRECISION NOT NULL DEFAULT 0,
    overflow_limit DOUBLE PRECISION NOT NULL DEFAULT 0,
    credit_factor DOUBLE PRECISION NOT NULL DEFAULT 1,
    effective_from TIMESTAMP(3) NOT NULL DEFAULT now(),
    updated_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    updated_at TIMESTAMP(3) NOT NULL DEFAULT now()
);

-- The two directory trees: identical but for the copilot org's is_default_global.
CREATE TABLE "Alchemi_CopilotOrgTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    is_default_global BOOLEAN NOT NULL DEFAULT false, created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);
CREATE TABLE "Alchemi_CopilotTeamTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES "Alchemi_CopilotOrgTable" (id) ON DELETE CASCADE,
    name TEXT NOT NULL, description TEXT, created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);
CREATE TABLE "Alchemi_CopilotUserTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, identity_user_id TEXT, email TEXT,
    display_name TEXT, status TEXT NOT NULL DEFAULT 'active', created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (account_id, email)
);
CREATE TABLE "Alchemi_CopilotTeamMembershipTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    team_id TEXT NOT NULL REFERENCES "Alchemi_CopilotTeamTable" (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES "Alchemi_CopilotUserTable" (id) ON DELETE CASCADE,
    role TEXT NOT NULL DEFAULT 'member', created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (team_id, user_id)
);
CREATE TABLE "Alchemi_ConsoleOrgTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT, created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);
CREATE TABLE "Alchemi_ConsoleTeamTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES "Alchemi_ConsoleOrgTable" (id) ON DELETE CASCADE,
    name TEXT NOT NULL, description TEXT, created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);
CREATE TABLE "Alchemi_ConsoleUserTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, identity_user_id TEXT, email TEXT,
    display_name TEXT, status TEXT NOT NULL DEFAULT 'active', created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (account_id, email)
);
CREATE TABLE "Alchemi_ConsoleTeamMembershipTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    team_id TEXT NOT NULL REFERENCES "Alchemi_ConsoleTeamTable" (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES "Alchemi_ConsoleUserTable" (id) ON DELETE CASCADE,
    role TEXT NOT NULL DEFAULT 'member', created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (team_id, user_id)
);

-- Budgets.
CREATE TABLE "Alchemi_CopilotBudgetPlanTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL,
    cycle TEXT NOT NULL DEFAULT 'monthly', status TEXT NOT NULL DEFAULT 'active', created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE TABLE "Alchemi_CopilotBudgetAllocationTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES "Alchemi_CopilotBudgetPlanTable" (id) ON DELETE CASCADE,
    scope_type TEXT NOT NULL, scope_id TEXT NOT NULL,
    allocated_credits DOUBLE PRECISION NOT NULL DEFAULT 0, overflow_cap DOUBLE PRECISION,
    source TEXT NOT NULL DEFAULT 'manual', created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (plan_id, scope_type, scope_id)
);
CREATE TABLE "Alchemi_CopilotBudgetOverrideTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES "Alchemi_CopilotBudgetPlanTable" (id) ON DELETE CASCADE,
    scope_type TEXT NOT NULL, scope_id TEXT NOT NULL, override_credits DOUBLE PRECISION NOT NULL,
    reason TEXT, created_by TEXT, created_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE TABLE "Alchemi_CopilotBudgetCycleTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, source_plan_id TEXT, new_plan_id TEXT,
    cycle_start TIMESTAMP(3), cycle_end TIMESTAMP(3),
    rollover_credits DOUBLE PRECISION NOT NULL DEFAULT 0,
    overflow_charge_credits DOUBLE PRECISION NOT NULL DEFAULT 0,
    summary_json JSONB NOT NULL DEFAULT '{}', created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE TABLE "Alchemi_CopilotUsageLedgerTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, org_id TEXT, team_id TEXT, user_id TEXT,
    agent_id TEXT, model_name TEXT, connection_id TEXT, guardrail_code TEXT,
    raw_cost DOUBLE PRECISION NOT NULL DEFAULT 0, credit_factor DOUBLE PRECISION NOT NULL DEFAULT 1,
    credits_incurred DOUBLE PRECISION NOT NULL DEFAULT 0, metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMP(3) NOT NULL DEFAULT now()
);

-- Connections, guardrails, agents.
CREATE TABLE "Alchemi_CopilotConnectionTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, connection_type TEXT NOT NULL, name TEXT NOT NULL,
    description TEXT, credential_visibility TEXT NOT NULL DEFAULT 'use_only',
    allow_user_self_manage BOOLEAN NOT NULL DEFAULT false,
    config_json JSONB NOT NULL DEFAULT '{}', secret_json JSONB NOT NULL DEFAULT '{}', created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE TABLE "Alchemi_CopilotConnectionGrantTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    connection_id TEXT NOT NULL REFERENCES "Alchemi_CopilotConnectionTable" (id) ON DELETE CASCADE,
    scope_type TEXT NOT NULL, scope_id TEXT NOT NULL, can_manage BOOLEAN NOT NULL DEFAULT false,
    created_by TEXT, created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (connection_id, scope_type, scope_id)
);
CREATE TABLE "Alchemi_CopilotGuardrailPresetTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL,
    preset_json JSONB NOT NULL DEFAULT '{}', created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (account_id, code)
);
CREATE TABLE "Alchemi_CopilotGuardrailAssignmentTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    preset_id TEXT NOT NULL REFERENCES "Alchemi_CopilotGuardrailPresetTable" (id) ON DELETE CASCADE,
    scope_type TEXT NOT NULL, scope_id TEXT NOT NULL, created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE TABLE "Alchemi_CopilotAgentTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    definition_json JSONB NOT NULL DEFAULT '{}', created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE TABLE "Alchemi_CopilotAgentGrantTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
    agent_id TEXT NOT NULL REFERENCES "Alchemi_CopilotAgentTable" (id) ON DELETE CASCADE,
    scope_type TEXT NOT NULL, scope_id TEXT NOT NULL, created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (agent_id, scope_type, scope_id)
);

-- Model grants, features, marketplace.
CREATE TABLE "Alchemi_ModelGrantTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, domain TEXT NOT NULL, model_name TEXT NOT NULL,
    scope_type TEXT NOT NULL, scope_id TEXT NOT NULL, access_mode TEXT NOT NULL DEFAULT 'allow',
    created_by TEXT, created_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE INDEX ON "Alchemi_ModelGrantTable" (account_id, domain);
CREATE TABLE "Alchemi_FeatureEntitlementTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, domain TEXT NOT NULL, feature_code TEXT NOT NULL,
    scope_type TEXT NOT NULL, scope_id TEXT NOT NULL, enabled BOOLEAN NOT NULL DEFAULT true,
    config_json JSONB NOT NULL DEFAULT '{}', created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (account_id, domain, feature_code, scope_type, scope_id)
);
CREATE TABLE "Alchemi_CopilotMarketplaceTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, entity_type TEXT NOT NULL, entity_id TEXT NOT NULL,
    title TEXT NOT NULL, description TEXT, is_published BOOLEAN NOT NULL DEFAULT true,
    is_featured BOOLEAN NOT NULL DEFAULT false, is_verified BOOLEAN NOT NULL DEFAULT false,
    pricing_model TEXT NOT NULL DEFAULT 'free', version TEXT NOT NULL DEFAULT '1.0.0', author TEXT,
    installation_count INTEGER NOT NULL DEFAULT 0, rating_avg DOUBLE PRECISION NOT NULL DEFAULT 0,
    rating_count INTEGER NOT NULL DEFAULT 0, created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE TABLE "Alchemi_CopilotMarketplaceGrantTable" (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, marketplace_id TEXT NOT NULL,
    scope_type TEXT NOT NULL, scope_id TEXT NOT NULL, created_by TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    UNIQUE (marketplace_id, scope_type, scope_id)
);

-- Shared LiteLLM tables the old system used (the model table with its added account_id column).
CREATE TABLE "LiteLLM_AuditLog" (
    id TEXT PRIMARY KEY, updated_at TIMESTAMP(3) NOT NULL DEFAULT now(), changed_by TEXT,
    changed_by_api_key TEXT, action TEXT, table_name TEXT, object_id TEXT,
    before_value JSONB, updated_values JSONB, account_id TEXT
);
CREATE INDEX ON "LiteLLM_AuditLog" (account_id);
CREATE TABLE "LiteLLM_Config" (param_name TEXT PRIMARY KEY, param_value JSONB, account_id TEXT);
CREATE TABLE "LiteLLM_ProxyModelTable" (
    model_id TEXT PRIMARY KEY, model_name TEXT NOT NULL, litellm_params JSONB NOT NULL,
    model_info JSONB, blocked BOOLEAN NOT NULL DEFAULT false, account_id TEXT,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), created_by TEXT NOT NULL DEFAULT 'super_admin',
    updated_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_by TEXT NOT NULL DEFAULT 'super_admin'
);
