-- The LiteLLM proxy tables `cockpit import litellm --database-url` reads, as LiteLLM's
-- schema.prisma declares them (litellm/proxy/schema.prisma: String[] is TEXT[], Json is JSONB),
-- with only the columns the importer or a realistic fixture needs.

CREATE TABLE "LiteLLM_BudgetTable" (
    budget_id TEXT PRIMARY KEY, max_budget DOUBLE PRECISION, soft_budget DOUBLE PRECISION,
    max_parallel_requests INTEGER, tpm_limit BIGINT, rpm_limit BIGINT, budget_duration TEXT,
    budget_reset_at TIMESTAMP(3), created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
    created_by TEXT NOT NULL, updated_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_by TEXT NOT NULL
);
CREATE TABLE "LiteLLM_OrganizationTable" (
    organization_id TEXT PRIMARY KEY, organization_alias TEXT NOT NULL,
    budget_id TEXT NOT NULL REFERENCES "LiteLLM_BudgetTable" (budget_id),
    metadata JSONB NOT NULL DEFAULT '{}', models TEXT[] NOT NULL DEFAULT '{}',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0, model_spend JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), created_by TEXT NOT NULL,
    updated_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_by TEXT NOT NULL
);
CREATE TABLE "LiteLLM_TeamTable" (
    team_id TEXT PRIMARY KEY, team_alias TEXT,
    organization_id TEXT REFERENCES "LiteLLM_OrganizationTable" (organization_id),
    admins TEXT[] NOT NULL DEFAULT '{}', members TEXT[] NOT NULL DEFAULT '{}',
    members_with_roles JSONB NOT NULL DEFAULT '{}', metadata JSONB NOT NULL DEFAULT '{}',
    max_budget DOUBLE PRECISION, spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    models TEXT[] NOT NULL DEFAULT '{}', max_parallel_requests INTEGER, tpm_limit BIGINT,
    rpm_limit BIGINT, budget_duration TEXT, budget_reset_at TIMESTAMP(3),
    blocked BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_at TIMESTAMP(3) NOT NULL DEFAULT now()
);
CREATE TABLE "LiteLLM_UserTable" (
    user_id TEXT PRIMARY KEY, user_alias TEXT, team_id TEXT, sso_user_id TEXT UNIQUE,
    organization_id TEXT REFERENCES "LiteLLM_OrganizationTable" (organization_id),
    password TEXT, teams TEXT[] NOT NULL DEFAULT '{}', user_role TEXT,
    max_budget DOUBLE PRECISION, spend DOUBLE PRECISION NOT NULL DEFAULT 0, user_email TEXT,
    models TEXT[] NOT NULL DEFAULT '{}', metadata JSONB NOT NULL DEFAULT '{}',
    max_parallel_requests INTEGER, tpm_limit BIGINT, rpm_limit BIGINT, budget_duration TEXT,
    budget_reset_at TIMESTAMP(3),
    created_at TIMESTAMP(3) DEFAULT now(), updated_at TIMESTAMP(3) DEFAULT now()
);
CREATE TABLE "LiteLLM_TeamMembership" (
    user_id TEXT NOT NULL, team_id TEXT NOT NULL, spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    total_spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_id TEXT REFERENCES "LiteLLM_BudgetTable" (budget_id),
    PRIMARY KEY (user_id, team_id)
);
CREATE TABLE "LiteLLM_OrganizationMembership" (
    user_id TEXT NOT NULL REFERENCES "LiteLLM_UserTable" (user_id),
    organization_id TEXT NOT NULL REFERENCES "LiteLLM_OrganizationTable" (organization_id),
    user_role TEXT, spend DOUBLE PRECISION DEFAULT 0,
    budget_id TEXT REFERENCES "LiteLLM_BudgetTable" (budget_id),
    created_at TIMESTAMP(3) DEFAULT now(), updated_at TIMESTAMP(3) DEFAULT now(),
    PRIMARY KEY (user_id, organization_id)
);
CREATE TABLE "LiteLLM_VerificationToken" (
    token TEXT PRIMARY KEY, key_name TEXT, key_alias TEXT, spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    expires TIMESTAMP(3), models TEXT[] NOT NULL DEFAULT '{}', user_id TEXT, team_id TEXT,
    metadata JSONB NOT NULL DEFAULT '{}', tpm_limit BIGINT, rpm_limit BIGINT,
    max_budget DOUBLE PRECISION, budget_duration TEXT, organization_id TEXT,
    created_at TIMESTAMP(3) DEFAULT now(), created_by TEXT
);
CREATE TABLE "LiteLLM_ProxyModelTable" (
    model_id TEXT PRIMARY KEY, model_name TEXT NOT NULL, litellm_params JSONB NOT NULL,
    model_info JSONB, blocked BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP(3) NOT NULL DEFAULT now(), created_by TEXT NOT NULL,
    updated_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_by TEXT NOT NULL
);
