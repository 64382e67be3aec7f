"""`cockpit import console-cockpit`: a running console-cockpit's accounts as a tenant repo.

Reads the old `Alchemi_*` tables (and the catalog rows of `LiteLLM_ProxyModelTable`) in one READ
ONLY transaction, maps TEXT ids to natural keys (scopes by name, users by e-mail) and builds
documents in `cockpit export`'s layout. Whatever the config language cannot say as it was, or
decides differently, becomes a located entry of the import report; the old system's own
algorithms (`old_policy`) are kept beside each account so `parity` can compare effective access.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cockpit.adopt import models_import
from cockpit.adopt.console_budgets import PlanBudget
from cockpit.adopt.console_tables import ACCOUNTS, read_console_cockpit
from cockpit.adopt.names import UniqueNames, slug
from cockpit.adopt.old_policy import OldAccount
from cockpit.adopt.output import TenantTree
from cockpit.adopt.report import Report, row_at
from cockpit.adopt.values import json_object, number
from cockpit.config.models import API_VERSION
from cockpit.config.types import DOMAIN_PATTERN, EMAIL_PATTERN
from cockpit.credits import is_whole_cents, to_cents
from cockpit.export.documents import DEFAULT_GLOBAL_DESCRIPTION
from cockpit.patterns import pattern_problem

Row = dict[str, Any]
DOMAINS = ("copilot", "console")
BASE_ROLES = ("account_admin", "console_org_admin", "console_team_admin", "copilot_org_admin", "copilot_team_admin", "end_user")
TEAM_ADMIN_ROLES = ("console_org_admin", "console_team_admin", "copilot_org_admin", "copilot_team_admin")
ZITADEL_KEYS = ("project_id", "organization_id", "issuer", "role_mappings")
_EMAIL = re.compile(EMAIL_PATTERN)
_DOMAIN = re.compile(DOMAIN_PATTERN)


where = row_at


@dataclass
class AccountImport:
    """One account's mapping: old ids → config names, and the old rows for the parity check."""

    row: Row
    name: str
    old: OldAccount
    users: dict[str, dict[str, str]] = field(default_factory=lambda: {d: {} for d in DOMAINS})
    """domain → old user id → e-mail."""
    orgs: dict[str, dict[str, str]] = field(default_factory=lambda: {d: {} for d in DOMAINS})
    teams: dict[str, dict[str, str]] = field(default_factory=lambda: {d: {} for d in DOMAINS})
    """domain → old team id → `org/team`."""
    agents: dict[str, str] = field(default_factory=dict)
    connections: dict[str, str] = field(default_factory=dict)
    listings: dict[str, str] = field(default_factory=dict)
    """old listing id → `agent:NAME` / `connection:NAME`."""
    presets: dict[str, str] = field(default_factory=dict)
    """old preset id → code."""
    features: dict[str, str] = field(default_factory=dict)
    """old feature code → config name."""

    def scope(self, domain: str, scope_type: str, scope_id: Any) -> str | None:
        """The config's scope for an old (type, id), or None when it names nothing that exists."""
        scope_id = str(scope_id)
        if scope_type == "account":
            return "account" if scope_id == self.row["account_id"] else None
        if scope_type == "pool":
            return "pool"
        if scope_type in ("org", "group") and scope_id in self.orgs[domain]:
            return f"org:{self.orgs[domain][scope_id]}"
        if scope_type == "team" and scope_id in self.teams[domain]:
            return f"team:{self.teams[domain][scope_id]}"
        if scope_type == "user" and scope_id in self.users[domain]:
            return f"user:{self.users[domain][scope_id]}"
        if scope_type == "agent" and scope_id in self.agents:
            return f"agent:{self.agents[scope_id]}"
        return None


def import_console_cockpit(url: str, accounts: tuple[str, ...] = ()) -> tuple[TenantTree, list[AccountImport]]:
    """The tenant tree of the database at `url` (the named accounts, or all) and, per account,
    its id mapping and old rows for the parity check."""
    account_rows, tables, model_rows = read_console_cockpit(url, accounts)
    tree = TenantTree(Report("console-cockpit database"))
    catalog = models_import.catalog_models(model_rows, tree)
    by_account: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for table, rows in tables.items():
        for row in rows:
            by_account[row["account_id"]][table].append(row)
    names = UniqueNames()
    imports = []
    several = len(account_rows) > 1
    for row in account_rows:
        name = names.claim(slug(row["account_name"], "account"))
        if name != row["account_name"]:
            tree.report.add("renamed", where(ACCOUNTS, row, "account_id"), f"account {row['account_name']!r} is named {name!r}")
        importer = _Importer(AccountImport(row, name, OldAccount()), by_account[row["account_id"]], catalog, tree, f"{name}/" if several else "")
        importer.run()
        imports.append(importer.a)
    tree.report.summary = [
        f"{len(imports)} account(s)", f"{len(catalog)} catalog model(s)",
        f"{sum(len(a.users['copilot']) + len(a.users['console']) for a in imports)} directory user(s)",
        f"{sum(len(a.agents) for a in imports)} agent(s)", f"{sum(len(a.connections) for a in imports)} connection(s)",
    ]
    tree.report.add("review", "Alchemi_CopilotUsageLedgerTable, Alchemi_CopilotBudgetCycleTable, LiteLLM_AuditLog", "usage, cycle history and audit are runtime data: they stay in the old database and are not imported")
    tree.report.add("review", "LiteLLM_Config alchemi_zitadel_onboarding_defaults", "the old UI's Zitadel onboarding defaults only prefilled a form; each account's own zitadel settings are imported")
    return tree, imports


class _Importer:
    """Builds the documents of one account; every deviation goes to the report."""

    def __init__(self, account: AccountImport, rows: dict[str, list[Row]], catalog: set[str], tree: TenantTree, prefix: str) -> None:
        self.a, self.rows, self.catalog, self.tree = account, rows, catalog, tree
        self.prefix = prefix
        """`NAME/` when several accounts are imported: each gets export's layout in its own directory."""
        self.report = tree.report
        self.id = account.row["account_id"]
        self.feature_pack: list[str] = []
        self.agent_presets: dict[str, list[str]] = defaultdict(list)

    def run(self) -> None:
        account = self._account()
        for domain in DOMAINS:
            self._directory(domain)
        self._presets()
        self._agents()
        self._connections()
        self._model_access()
        self._features()
        self._marketplace()
        self._budgets(account)
        self.tree.add(f"{self.prefix}account.yaml", account)

    def _doc(self, kind: str, **fields: Any) -> dict[str, Any]:
        head: dict[str, Any] = {"apiVersion": API_VERSION, "kind": kind}
        if kind != "Account":
            head["account"] = self.a.name
        head.update({k: v for k, v in fields.items() if v is not None})
        return head

    # --- Account -----------------------------------------------------------------------------

    def _account(self) -> dict[str, Any]:
        row = self.a.row
        at = where(ACCOUNTS, row, "account_id")
        metadata = json_object(row.get("metadata"))
        email_domain = (row.get("domain") or "").strip().lower() or None
        if email_domain and not _DOMAIN.match(email_domain):
            self.report.add("dropped", at, f"domain {row.get('domain')!r} is not a DNS domain; email_domain is left out (set it by hand)")
            email_domain = None
        for money in ("max_budget", "spend"):
            if row.get(money) not in (None, 0, 0.0):
                self.report.add("dropped", at, f"{money} = {row[money]} (a legacy LiteLLM figure the old control plane did not enforce) has no field in Cockpit; budgets are the account allocation and budget plans")
        doc = self._doc("Account", name=self.a.name, alias=row.get("account_alias") or None, email_domain=email_domain)
        if row.get("status") not in (None, "active"):
            doc["status"] = "suspended" if row["status"] == "suspended" else "active"
        doc["admins"] = self._admins()
        sso = self._sso()
        if sso:
            doc["sso"] = sso
        allocation = self._allocation()
        if allocation:
            doc["allocation"] = allocation
        pack = metadata.get("feature_pack") or {}
        features = []
        for code in pack.get("features") or []:
            name = self._feature_name(str(code), at + " metadata.feature_pack")
            if name not in features:
                features.append(name)
        self.feature_pack = features
        if features or pack.get("config"):
            doc["feature_pack"] = {"features": features, **({"config": pack["config"]} if pack.get("config") else {})}
        policy = metadata.get("console_model_policy") or {}
        allow, deny = self._policy_models(policy.get("allow_models"), at, "allow_models"), self._policy_models(policy.get("deny_models"), at, "deny_models")
        if allow or deny:
            doc["model_policy"] = {"console": {"allow": allow, "deny": deny}}
            self.report.add("changed", at + " metadata.console_model_policy", "the console model policy was stored only; in Cockpit it is a ceiling that no grant can exceed (see the parity section for whom it changes)")
        zitadel = self._zitadel(metadata.get("zitadel") or {}, at)
        if zitadel:
            doc["zitadel"] = zitadel
        for key in sorted(set(metadata) - {"feature_pack", "console_model_policy", "zitadel"}):
            self.report.add("dropped", at + f" metadata.{key}", "account metadata key with no field in Cockpit")
        return doc

    def _admins(self) -> list[dict[str, str]]:
        admins = []
        for row in self.rows["Alchemi_AccountAdminTable"]:
            at = where("Alchemi_AccountAdminTable", row)
            email = (row.get("user_email") or "").strip().lower()
            role = (row.get("role") or "account_admin").strip()
            if not _EMAIL.match(email):
                self.report.add("dropped", at, f"admin {row.get('user_email')!r} is not an e-mail address")
                continue
            if role not in BASE_ROLES:
                self.report.add("dropped", at, f"admin {email} has role {role!r}, which is none of Cockpit's roles ({', '.join(BASE_ROLES)}); the old guards gave that role no admin right either")
                continue
            if email != row["user_email"]:
                self.report.add("renamed", at, f"admin {row['user_email']!r} is {email} (e-mail addresses are compared case-insensitively)")
            if role in TEAM_ADMIN_ROLES:
                self.report.add("review", at, f"admin {email} has role {role}: in the old system org and team admin roles were account-wide admins of their domain (no check of which org or team). Cockpit keeps the role as an account admin entry, account-wide as before; to narrow it, list {email} as an org admin or a team member with role: admin and remove the admin entry")
            admins.append({"email": email, "role": role} if role != "account_admin" else {"email": email})
        return admins

    def _sso(self) -> dict[str, Any] | None:
        rows = self.rows["Alchemi_AccountSSOConfig"]
        if not rows:
            return None
        row = rows[-1]
        at = where("Alchemi_AccountSSOConfig", row)
        settings = {}
        for key, value in sorted(json_object(row.get("sso_settings")).items()):
            if value in (None, ""):
                continue
            if "secret" in key.lower():
                settings[key] = self.tree.secret(f"{self.prefix}account.yaml", f"{self.a.name}-sso-{slug(key)}", str(value))
            elif isinstance(value, (str, int, float, bool)):
                settings[key] = value
            else:
                self.report.add("dropped", at, f"sso_settings.{key} is not a scalar; Cockpit's SSO settings hold strings, numbers and booleans")
        provider = row.get("sso_provider")
        sso: dict[str, Any] = {}
        if provider:
            if re.match(r"^[a-z][a-z0-9_-]{0,62}$", provider):
                sso["provider"] = provider
            else:
                self.report.add("dropped", at, f"sso_provider {provider!r} is not a provider name (lower-case letters, digits, '_' and '-'); set sso.provider by hand")
        if row.get("enabled"):
            sso["enabled"] = True
        if settings:
            sso["settings"] = settings
        return sso or None

    def _allocation(self) -> dict[str, Any]:
        rows = self.rows["Alchemi_AccountAllocationTable"]
        if not rows:
            return {}
        row = rows[-1]
        at = where("Alchemi_AccountAllocationTable", row)
        result: dict[str, Any] = {}
        for field_name, default in (("monthly_credits", 0), ("overflow_limit", 0), ("credit_factor", 1)):
            value = float(row.get(field_name) if row.get(field_name) is not None else default)
            if field_name != "credit_factor" and not is_whole_cents(value):
                rounded = round(value, 2)
                self.report.add("changed", at, f"{field_name} {value} rounded to {rounded}: credits go to the hundredth")
                value = rounded
            if value != default:
                result[field_name] = number(value)
        return result

    def _policy_models(self, names: Any, at: str, field_name: str) -> list[str]:
        kept = []
        for name in names or []:
            if name in self.catalog:
                kept.append(name)
            else:
                self.report.add("dropped", at + f" metadata.console_model_policy.{field_name}", f"model {name!r} is not in the catalog (LiteLLM_ProxyModelTable rows with account_id NULL); a policy may only name catalog models")
        return kept

    def _zitadel(self, config: dict[str, Any], at: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key in ZITADEL_KEYS:
            value = config.get(key)
            if value in (None, "", {}):
                continue
            if key == "role_mappings":
                mappings = {k: str(v) for k, v in value.items() if k in BASE_ROLES}
                for other in sorted(set(value) - set(BASE_ROLES)):
                    self.report.add("dropped", at + f" metadata.zitadel.role_mappings.{other}", "mapping of a role that is not one of the six standard roles")
                if mappings:
                    result[key] = mappings
            else:
                result[key] = str(value).rstrip("/") if key == "issuer" else str(value)
        for key in sorted(set(config) - set(ZITADEL_KEYS)):
            if key == "enabled" and config[key] is not False:
                continue
            self.report.add("dropped", at + f" metadata.zitadel.{key}", f"{key} = {config[key]!r} is not carried over: Cockpit verifies tokens with the server's global Zitadel settings (ZITADEL_ISSUER_URL, audience, claim names), as the old runtime did; login routing is not Cockpit's")
        return result

    # --- Directories -------------------------------------------------------------------------

    def _directory(self, domain: str) -> None:
        prefix = "Alchemi_Copilot" if domain == "copilot" else "Alchemi_Console"
        org_names = UniqueNames()
        orgs: dict[str, dict[str, Any]] = {}
        for row in self.rows[f"{prefix}OrgTable"]:
            at = where(f"{prefix}OrgTable", row)
            wanted = "global" if row.get("is_default_global") else slug(row["name"], "org")
            name = org_names.claim(wanted)
            if name != row["name"]:
                self.report.add("renamed", at, f"{domain} org {row['name']!r} is named {name!r}")
            self.a.orgs[domain][row["id"]] = name
            keep = row.get("description") and not (name == "global" and row["description"] == DEFAULT_GLOBAL_DESCRIPTION)
            orgs[row["id"]] = {"name": name, **({"description": row["description"]} if keep else {}), "admins": [], "teams": []}
        team_docs: dict[str, dict[str, Any]] = {}
        team_names: dict[str, UniqueNames] = defaultdict(UniqueNames)
        for row in self.rows[f"{prefix}TeamTable"]:
            at = where(f"{prefix}TeamTable", row)
            org = orgs.get(row["org_id"])
            if org is None:
                self.report.add("dropped", at, f"{domain} team {row['name']!r} belongs to org id {row['org_id']}, which does not exist")
                continue
            name = team_names[row["org_id"]].claim(slug(row["name"], "team"))
            if name != row["name"]:
                self.report.add("renamed", at, f"{domain} team {row['name']!r} is named {name!r}")
            team = {"name": name, **({"description": row["description"]} if row.get("description") else {}), "members": []}
            org["teams"].append(team)
            team_docs[row["id"]] = team
            self.a.teams[domain][row["id"]] = f"{org['name']}/{name}"
        users = []
        seen: dict[str, str] = {}
        for row in self.rows[f"{prefix}UserTable"]:
            at = where(f"{prefix}UserTable", row)
            email = (row.get("email") or "").strip().lower()
            if not _EMAIL.match(email):
                self.report.add("dropped", at, f"{domain} user without a usable e-mail ({'identity ' + str(row.get('identity_user_id')) if row.get('identity_user_id') else 'no identity either'}): Cockpit keys users by e-mail; their memberships and grants are dropped with them")
                continue
            if email in seen:
                self.report.add("changed", at, f"{domain} user {row.get('email')!r} is the same e-mail as user id {seen[email]} once lower-cased; merged into one user")
                self.a.users[domain][row["id"]] = email
                continue
            seen[email] = row["id"]
            self.a.users[domain][row["id"]] = email
            if email != row["email"]:
                self.report.add("renamed", at, f"{domain} user {row['email']!r} is {email} (e-mail addresses are compared case-insensitively; the config writes them lower-case)")
            user: dict[str, Any] = {"email": email}
            if row.get("display_name"):
                user["display_name"] = row["display_name"]
            if row.get("identity_user_id"):
                user["identity_user_id"] = str(row["identity_user_id"])
            if row.get("status") == "suspended":
                user["status"] = "suspended"
                self.report.add("changed", at, f"{domain} user {email} is suspended: the old system stored the status without using it; Cockpit refuses a suspended user's keys and tokens in that domain")
            users.append(user)
        members: dict[tuple[str, str], dict[str, str]] = {}
        for row in self.rows[f"{prefix}TeamMembershipTable"]:
            at = where(f"{prefix}TeamMembershipTable", row)
            team, email = team_docs.get(row["team_id"]), self.a.users[domain].get(row["user_id"])
            if team is None or email is None:
                self.report.add("dropped", at, f"membership of user id {row['user_id']} in team id {row['team_id']}: the user or team was not imported (see above)")
                continue
            role = row.get("role") or "member"
            if role not in ("member", "admin"):
                self.report.add("changed", at, f"membership role {role!r} of {email} in team {self.a.teams[domain][row['team_id']]} is written as member (Cockpit's team roles are member and admin)")
                role = "member"
            key = (row["team_id"], email)
            if key in members:
                if role == "admin":
                    members[key]["role"] = "admin"
                continue
            members[key] = {"user": email, **({"role": role} if role != "member" else {})}
            team["members"].append(members[key])
            self.a.old.memberships.setdefault(domain, {}).setdefault(email, []).append(f"team:{self.a.teams[domain][row['team_id']]}")
        org_list = []
        for org in orgs.values():
            if not org["admins"]:
                del org["admins"]
            for team in org["teams"]:
                if not team["members"]:
                    del team["members"]
            if not org["teams"]:
                del org["teams"]
            org_list.append(org)
        if users or org_list:
            self.tree.add(f"{self.prefix}directory/{domain}.yaml", self._doc("Directory", domain=domain, users=users, orgs=org_list))

    # --- Guardrails and agents -----------------------------------------------------------------

    def _presets(self) -> None:
        codes = UniqueNames()
        self.preset_docs: dict[str, dict[str, Any]] = {}
        for row in self.rows["Alchemi_CopilotGuardrailPresetTable"]:
            at = where("Alchemi_CopilotGuardrailPresetTable", row)
            code = codes.claim(slug(row["code"], "preset"))
            if code != row["code"]:
                self.report.add("renamed", at, f"guardrail preset code {row['code']!r} is {code!r}")
            self.a.presets[row["id"]] = code
            body = json_object(row.get("preset_json"))
            config = body.get("config") if isinstance(body.get("config"), dict) else {}
            for key in sorted(set(body) - {"config", "custom_patterns"}):
                self.report.add("dropped", at + f" preset_json.{key}", "preset key with no field in Cockpit (presets hold config and patterns)")
            doc = self._doc("GuardrailPreset", code=code, name=row.get("name") or code)
            if config:
                doc["config"] = config
            patterns = self._patterns(body.get("custom_patterns") or [], at, code)
            if patterns:
                doc["patterns"] = patterns
            doc["assign"] = []
            self.preset_docs[row["id"]] = doc
        seen: set[tuple[str, str]] = set()
        for row in self.rows["Alchemi_CopilotGuardrailAssignmentTable"]:
            at = where("Alchemi_CopilotGuardrailAssignmentTable", row)
            code = self.a.presets.get(row["preset_id"])
            if code is None:
                continue  # cascades with its preset
            if row["scope_type"] == "agent":
                self.agent_presets[str(row["scope_id"])].append(code)
                continue
            scope = self.a.scope("copilot", row["scope_type"], row["scope_id"])
            if scope is None:
                self.report.add("dropped", at, f"assignment of preset {code} to {row['scope_type']} {row['scope_id']}, which no longer exists")
                continue
            self.a.old.assignments.append({**row, "code": code, "scope": scope})
            if (code, scope) in seen:
                self.report.add("changed", at, f"preset {code} is assigned to {scope} more than once; the old effective view listed it once per row, Cockpit once")
                continue
            seen.add((code, scope))
            self.preset_docs[row["preset_id"]]["assign"].append(scope)

    def _patterns(self, patterns: list[Any], at: str, code: str) -> list[dict[str, Any]]:
        names = UniqueNames()
        result = []
        for pattern in patterns:
            if not isinstance(pattern, dict):
                continue
            where_ = f"{at} preset_json.custom_patterns id={pattern.get('id')}"
            regex = str(pattern.get("pattern_regex") or "")
            problem = pattern_problem(regex) if regex else "empty regex"
            if problem:
                self.report.add("dropped", where_, f"pattern {pattern.get('pattern_name')!r} of preset {code}: {problem}. The old system never compiled patterns; rewrite it for RE2 and add it back")
                continue
            name = names.claim(slug(pattern.get("pattern_name"), "pattern"))
            if name != pattern.get("pattern_name"):
                self.report.add("renamed", where_, f"pattern {pattern.get('pattern_name')!r} of preset {code} is named {name!r}")
            item: dict[str, Any] = {"name": name, "regex": regex}
            kind = pattern.get("pattern_type") or "detect"
            if kind not in ("detect", "block", "allow"):
                self.report.add("changed", where_, f"pattern type {kind!r} is written as detect")
                kind = "detect"
            if kind != "detect":
                item["type"] = kind
            if pattern.get("enabled") is False:
                item["enabled"] = False
            if pattern.get("action"):
                item["action"] = str(pattern["action"])
            if pattern.get("is_system"):
                self.report.add("review", where_, f"pattern {name} of preset {code} was a system pattern (only its enabled flag could change); in Cockpit it is a pattern of the preset like any other")
            result.append(item)
        return result

    def _agents(self) -> None:
        names = UniqueNames()
        grants_by_agent: dict[str, list[Row]] = defaultdict(list)
        for row in self.rows["Alchemi_CopilotAgentGrantTable"]:
            grants_by_agent[row["agent_id"]].append(row)
        for row in self.rows["Alchemi_CopilotAgentTable"]:
            at = where("Alchemi_CopilotAgentTable", row)
            name = names.claim(slug(row["name"], "agent"))
            if name != row["name"]:
                why = "another agent of the account already has that name" if slug(row["name"], "agent") != name else "names are lower-case letters, digits, '.', '_' and '-'"
                self.report.add("renamed", at, f"agent {row['name']!r} is named {name!r} ({why})")
            presets = list(dict.fromkeys(self.agent_presets.pop(row["id"], [])))
            if not presets:
                self.report.add("dropped", at, f"agent {row['name']!r} has no guardrail preset and Cockpit requires one; add the agent back with a preset")
                continue
            self.a.agents[row["id"]] = name
            grants = []
            for grant in grants_by_agent[row["id"]]:
                scope = self.a.scope("copilot", grant["scope_type"], grant["scope_id"])
                if scope is None or scope == "account":
                    self.report.add("dropped", where("Alchemi_CopilotAgentGrantTable", grant), f"grant of agent {name} to {grant['scope_type']} {grant['scope_id']}, which no longer exists")
                    continue
                self.a.old.agent_grants.append({**grant, "agent_id": name, "scope": scope})
                grants.append(scope)
            doc = self._doc("Agent", name=name, description=row.get("description") or None)
            definition = json_object(row.get("definition_json"))
            if definition:
                doc["definition"] = definition
            doc["guardrails"] = presets
            if grants:
                doc["grants"] = grants
            self.tree.add(f"{self.prefix}agents/{name}.yaml", doc)
        for agent_id, codes in self.agent_presets.items():
            self.report.add("dropped", f"Alchemi_CopilotGuardrailAssignmentTable scope_type=agent scope_id={agent_id}", f"assignment of {', '.join(codes)} to an agent that no longer exists (the old system left it behind when the agent was deleted)")
        for doc in self.preset_docs.values():
            if not doc["assign"]:
                del doc["assign"]
            self.tree.add(f"{self.prefix}guardrails/{doc['code']}.yaml", doc)

    def _connections(self) -> None:
        names = UniqueNames()
        grants_by: dict[str, list[Row]] = defaultdict(list)
        for row in self.rows["Alchemi_CopilotConnectionGrantTable"]:
            grants_by[row["connection_id"]].append(row)
        for row in self.rows["Alchemi_CopilotConnectionTable"]:
            at = where("Alchemi_CopilotConnectionTable", row)
            name = names.claim(slug(row["name"], "connection"))
            if name != row["name"]:
                why = "another connection of the account already has that name" if slug(row["name"], "connection") != name else "names are lower-case letters, digits, '.', '_' and '-'"
                self.report.add("renamed", at, f"connection {row['name']!r} is named {name!r} ({why})")
            kind = (row.get("connection_type") or "").strip().lower()
            kind = "composio" if kind == "integration" else kind
            if kind not in ("openapi", "mcp", "composio"):
                self.report.add("dropped", at, f"connection {name} has type {row.get('connection_type')!r}, not openapi, mcp or composio")
                continue
            self.a.connections[row["id"]] = name
            path = f"{self.prefix}connections/{name}.yaml"
            doc = self._doc("Connection", name=name, type=kind, description=row.get("description") or None)
            if row.get("credential_visibility") not in (None, "use_only"):
                doc["credential_visibility"] = row["credential_visibility"]
            if row.get("allow_user_self_manage"):
                doc["allow_user_self_manage"] = True
            config = json_object(row.get("config_json"))
            if config:
                doc["config"] = config
            secret = {}
            for key, value in sorted(json_object(row.get("secret_json")).items()):
                if not re.match(r"^[A-Za-z0-9_.-]+$", str(key)):
                    self.report.add("dropped", at, f"a secret_json key of connection {name} is not a plain name; re-add it by hand")
                    continue
                text = value if isinstance(value, str) else json.dumps(value)
                if not isinstance(value, str):
                    self.report.add("changed", at, f"secret_json.{key} of connection {name} is not a string; its file holds it as JSON text")
                secret[key] = self.tree.secret(path, f"{self.a.name}-connection-{name}-{slug(key, 'secret')}", text)
            if secret:
                doc["secret"] = secret
            grants = []
            for grant in grants_by[row["id"]]:
                scope = self.a.scope("copilot", grant["scope_type"], grant["scope_id"])
                if scope is None or scope == "account":
                    self.report.add("dropped", where("Alchemi_CopilotConnectionGrantTable", grant), f"grant of connection {name} to {grant['scope_type']} {grant['scope_id']}, which no longer exists")
                    continue
                self.a.old.connection_grants.append({**grant, "connection_id": name, "scope": scope})
                grants.append({"scope": scope, **({"can_manage": True} if grant.get("can_manage") else {})})
            if grants:
                doc["grants"] = grants
            self.tree.add(path, doc)

    # --- Model access, features, marketplace --------------------------------------------------

    def _other_domains(self, table: str, what: str) -> None:
        for row in self.rows[table]:
            if row.get("domain") not in DOMAINS:
                self.report.add("dropped", where(table, row), f"{what} in domain {row.get('domain')!r}, which is neither copilot nor console")

    def _model_access(self) -> None:
        self._other_domains("Alchemi_ModelGrantTable", "model grant")
        for domain in DOMAINS:
            decided: dict[tuple[str, str], tuple[str, Row]] = {}
            for row in self.rows["Alchemi_ModelGrantTable"]:
                if row.get("domain") != domain:
                    continue
                at = where("Alchemi_ModelGrantTable", row)
                scope = self.a.scope(domain, row["scope_type"], row["scope_id"])
                access = row.get("access_mode") or "allow"
                if scope is None:
                    self.report.add("dropped", at, f"{domain} grant of {row['model_name']} to {row['scope_type']} {row['scope_id']}, which no longer exists")
                    continue
                self.a.old.model_grants.append({**row, "scope": scope})
                if row["model_name"] not in self.catalog:
                    self.report.add("dropped", at, f"{domain} grant of {row['model_name']!r} to {scope}: the model is not in the catalog (the old system never checked); grant it again once the model is declared")
                    continue
                key = (row["model_name"], scope)
                if key in decided:
                    before = decided[key][0]
                    if before != access:
                        self.report.add("changed", at, f"{domain} grants of {row['model_name']} to {scope} say both allow and deny; one grant with access: deny is written (deny won within a level in the old system too)")
                    else:
                        self.report.add("changed", at, f"duplicate {domain} grant of {row['model_name']} to {scope}; written once")
                    if access == "deny":
                        decided[key] = (access, row)
                    continue
                decided[key] = (access, row)
            grants = [
                {"model": model, "scope": scope, **({"access": "deny"} if access == "deny" else {})}
                for (model, scope), (access, _) in decided.items()
            ]
            if grants:
                self.tree.add(f"{self.prefix}access/models.yaml", self._doc("ModelAccess", domain=domain, grants=grants))

    def _feature_name(self, code: str, at: str) -> str:
        if code not in self.a.features:
            name = slug(code, "feature")
            if name != code:
                self.report.add("renamed", at, f"feature {code!r} is named {name!r}")
            self.a.features[code] = name
        return self.a.features[code]

    def _features(self) -> None:
        pack = set(self.feature_pack)
        self._other_domains("Alchemi_FeatureEntitlementTable", "feature entitlement")
        for domain in DOMAINS:
            entitlements = []
            for row in self.rows["Alchemi_FeatureEntitlementTable"]:
                if row.get("domain") != domain:
                    continue
                at = where("Alchemi_FeatureEntitlementTable", row)
                scope = self.a.scope(domain, row["scope_type"], row["scope_id"])
                if scope is None:
                    self.report.add("dropped", at, f"{domain} entitlement {row['feature_code']} for {row['scope_type']} {row['scope_id']}, which no longer exists")
                    continue
                name = self._feature_name(str(row["feature_code"]), at)
                self.a.old.entitlements.append({**row, "feature_code": name, "scope": scope})
                if name not in pack:
                    self.report.add("dropped", at, f"{domain} entitlement of {name} for {scope}: the feature is not in the account's feature pack, which Cockpit makes a ceiling (the old system did not consult the pack); add it to the pack to keep it")
                    continue
                item: dict[str, Any] = {"feature": name, "scope": scope}
                if row.get("enabled") is False:
                    item["enabled"] = False
                config = json_object(row.get("config_json"))
                if config:
                    item["config"] = config
                entitlements.append(item)
            if entitlements:
                self.tree.add(f"{self.prefix}access/features.yaml", self._doc("Features", domain=domain, entitlements=entitlements))

    def _marketplace(self) -> None:
        grants_by: dict[str, list[Row]] = defaultdict(list)
        for row in self.rows["Alchemi_CopilotMarketplaceGrantTable"]:
            grants_by[row["marketplace_id"]].append(row)
        chosen: dict[str, Row] = {}
        for row in self.rows["Alchemi_CopilotMarketplaceTable"]:
            at = where("Alchemi_CopilotMarketplaceTable", row)
            kind = row.get("entity_type")
            owner = {"agent": self.a.agents, "connection": self.a.connections}.get(kind, {})
            entity = owner.get(str(row.get("entity_id")))
            if entity is None:
                self.report.add("dropped", at, f"listing {row.get('title')!r} names {kind} {row.get('entity_id')}, which does not exist (the old system never checked, and left listings behind when their entity was deleted)")
                continue
            ref = f"{kind}:{entity}"
            if ref in chosen:
                self.report.add("changed", at, f"a second listing of {ref}: listings are unique per entity; this newer one ({row.get('title')!r}) is kept, the older one (id={chosen[ref]['id']}) is not")
            chosen[ref] = row
        docs = []
        for ref, row in chosen.items():
            at = where("Alchemi_CopilotMarketplaceTable", row)
            self.a.listings[row["id"]] = ref
            self.a.old.listings.append({**row, "id": ref})
            doc = self._doc("MarketplaceListing", entity=ref, title=row.get("title") or ref, description=row.get("description") or None)
            for field_name, column, default in (("published", "is_published", True), ("featured", "is_featured", False), ("verified", "is_verified", False), ("pricing_model", "pricing_model", "free"), ("version", "version", "1.0.0"), ("author", "author", None)):
                value = row.get(column)
                if value is not None and value != default:
                    doc[field_name] = value
            counters = {c: row.get(c) for c in ("installation_count", "rating_avg", "rating_count") if row.get(c)}
            if counters:
                self.report.add("dropped", at, f"listing {ref}: {', '.join(f'{k} = {v}' for k, v in counters.items())} are usage statistics, not config")
            grants = []
            for grant in grants_by[row["id"]]:
                scope = self.a.scope("copilot", grant["scope_type"], grant["scope_id"])
                if scope is None or scope == "account":
                    self.report.add("dropped", where("Alchemi_CopilotMarketplaceGrantTable", grant), f"grant of listing {ref} to {grant['scope_type']} {grant['scope_id']}, which no longer exists")
                    continue
                self.a.old.listing_grants.append({**grant, "marketplace_id": ref, "scope": scope})
                grants.append(scope)
            if grants:
                doc["grants"] = grants
            docs.append(doc)
        for doc in docs:
            self.tree.add(f"{self.prefix}marketplace.yaml", doc)

    # --- Budgets ------------------------------------------------------------------------------

    def _budgets(self, account: dict[str, Any]) -> None:
        plans = self.rows["Alchemi_CopilotBudgetPlanTable"]
        active = [p for p in plans if (p.get("status") or "active") == "active"]
        names = UniqueNames()
        allocation = account.get("allocation", {})
        capacity = to_cents(allocation.get("monthly_credits", 0))
        for plan in plans:
            at = where("Alchemi_CopilotBudgetPlanTable", plan)
            name = names.claim(slug(plan["name"], "plan"))
            if name != plan["name"]:
                self.report.add("renamed", at, f"budget plan {plan['name']!r} is named {name!r}")
            is_active = bool(active) and plan is active[-1]
            if plan in active and not is_active:
                self.report.add("changed", at, f"budget plan {name} is active but newer plan {active[-1]['name']!r} is too; only the newest stays active (at most one active plan per account)")
            cycle = plan.get("cycle") or "monthly"
            if cycle not in ("monthly", "quarterly"):
                self.report.add("changed", at, f"budget plan {name} has cycle {cycle!r}; Cockpit's cycles are monthly and quarterly: written as monthly")
                cycle = "monthly"
            doc = self._doc("BudgetPlan", name=name)
            if cycle != "monthly":
                doc["cycle"] = cycle
            if not is_active:
                doc["active"] = False
            doc.update(PlanBudget(self, plan, name, capacity).build())
            self.tree.add(f"{self.prefix}budgets/{name}.yaml", doc)


__all__ = ["AccountImport", "import_console_cockpit"]
