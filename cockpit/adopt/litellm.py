"""`cockpit import litellm`: LiteLLM's proxy (`config.yaml`, and optionally its database) as one
account of a tenant repo.

- `model_list` → `Model` documents (`models_import`); several entries with one `model_name`
  are LiteLLM's load-balanced deployments: the `deployments` of one model; an entry's `rpm`/`tpm`
  are its deployment's. `fallbacks` (`[{model: [fallback, …]}]`, in `router_settings` or
  `litellm_settings`) become `Model.fallbacks` where the model and the fallback were both
  imported (else reported; one that would close a cycle, which Cockpit refuses, too). Every other
  top-level section of the config is reported, never echoed (`general_settings` holds the master
  key).
- With `--database-url` (read in one READ ONLY transaction): organizations, teams, users and
  their memberships → the account's console `Directory`; their `models` lists → `ModelAccess`
  (LiteLLM's rules: an empty list means every model, so the account is granted the whole catalog
  and a non-empty list narrows a scope to it with deny grants for the rest); the proxy's own
  `max_budget`/`budget_duration` → the account's `monthly_credits` and a `BudgetPlan` that sets
  the cycle (Cockpit caps console spend account-wide; budgets of orgs, teams and users below it
  are copilot's, so those are reported); `rpm_limit`/`tpm_limit` of organizations (their
  budget row), teams and users → a console `RateLimits` document (`access/rate_limits.yaml`);
  virtual keys are not moved, nor their limits: the report says whose they were; models stored
  in the database (`store_model_in_db`) are named in the report but not read, their parameters
  being encrypted with LiteLLM's salt key.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.exc import DBAPIError, ProgrammingError

from cockpit.adopt import models_import
from cockpit.adopt.names import UniqueNames, is_name, slug
from cockpit.adopt.output import ImportFailure, TenantTree
from cockpit.adopt.report import Report, row_at
from cockpit.config.models import API_VERSION, RATE_MAX
from cockpit.store.engine import normalise_database_url

Row = dict[str, Any]
ALL_MODELS = ("all-proxy-models", "*")
MONTHLY = ("30d", "1mo", "1m", "31d")
QUARTERLY = ("90d", "3mo", "3m", "91d", "92d")
TABLES = {
    "LiteLLM_OrganizationTable": "organization_id",
    "LiteLLM_TeamTable": "team_id",
    "LiteLLM_UserTable": "user_id",
    "LiteLLM_TeamMembership": "user_id",
    "LiteLLM_OrganizationMembership": "user_id",
    "LiteLLM_BudgetTable": "budget_id",
    "LiteLLM_VerificationToken": "token",
}


STORED_MODELS = "LiteLLM_ProxyModelTable"


def import_litellm(config: Path, database_url: str | None, account: str) -> TenantTree:
    """The tenant tree of one LiteLLM proxy, as account `account`."""
    if not is_name(account):
        raise ImportFailure(f"--account {account!r} is not a config name: use lower-case letters, digits, '.', '_' and '-'")
    data, lines = _load_config(config)
    tree = TenantTree(Report(f"LiteLLM proxy ({config.name}{' and database' if database_url else ''})"))
    documents, names = _models(data, lines, config.name, tree)
    catalog = set(documents)
    _fallbacks(data, lines, config.name, documents, names, tree)
    account_doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "Account", "name": account}
    for section in sorted(set(data) - {"model_list"}):
        keys = data[section] if isinstance(data[section], dict) else {}
        if section in FALLBACK_SECTIONS:
            keys = {k: v for k, v in keys.items() if k != "fallbacks"}
        if section == "litellm_settings" and isinstance(keys, dict):
            _proxy_budget(keys, f"{config.name}:{lines.get(section, 1)}", account_doc, tree)
            keys = {k: v for k, v in keys.items() if k not in ("max_budget", "budget_duration")}
        if not keys and isinstance(data[section], dict) and data[section]:
            continue
        names = f" ({', '.join(sorted(map(str, keys)))})" if keys else ""
        tree.report.add("dropped", f"{config.name}:{lines.get(section, 1)}", f"section {section}{names} is LiteLLM's own runtime setting; Cockpit's server has its own (see README), so it is not carried over")
    users = 0
    if database_url:
        users = _Directory(_read_database(database_url), account, catalog, tree, account_doc).run()
    tree.add("account.yaml", account_doc)
    tree.report.summary = [f"{len(catalog)} model(s)", f"{users} directory user(s)"]
    return tree


def _load_config(path: Path) -> tuple[dict[str, Any], dict[Any, int]]:
    """The config and the line of each model_list entry (index → line) and top-level section."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFailure(f"{path}: cannot read it: {exc.strerror if isinstance(exc, OSError) else 'not UTF-8'}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ImportFailure(f"{at}: error: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_list"), list):
        raise ImportFailure(f"{path}:1:1: error: a LiteLLM proxy config has a top-level model_list (a list of models); this file has none")
    lines: dict[Any, int] = {}
    for key, value in node.value:
        lines[key.value] = key.start_mark.line + 1
        if key.value == "model_list" and isinstance(value, yaml.SequenceNode):
            for index, item in enumerate(value.value):
                lines[index] = item.start_mark.line + 1
        if key.value in FALLBACK_SECTIONS and isinstance(value, yaml.MappingNode):
            for sub, subvalue in value.value:
                if sub.value == "fallbacks":
                    lines[(key.value, "fallbacks")] = sub.start_mark.line + 1
                    if isinstance(subvalue, yaml.SequenceNode):
                        for index, item in enumerate(subvalue.value):
                            lines[(key.value, "fallbacks", index)] = item.start_mark.line + 1
    return data, lines


def _models(data: dict[str, Any], lines: dict[Any, int], file: str, tree: TenantTree) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The `Model` documents by name, and each `model_name` of the config → its catalog name."""
    entries: list[models_import.Upstream] = []
    names: dict[str, str] = {}
    for index, entry in enumerate(data["model_list"]):
        at = f"{file}:{lines.get(index, 1)}"
        if not isinstance(entry, dict):
            tree.report.add("dropped", at, "model_list entry is not a mapping")
            continue
        name = models_import.model_name(entry.get("model_name"), at, tree)
        if name is None:
            continue
        names[str(entry.get("model_name")).strip()] = name
        params = entry.get("litellm_params") if isinstance(entry.get("litellm_params"), dict) else {}
        info = entry.get("model_info") if isinstance(entry.get("model_info"), dict) else {}
        entries.append(models_import.Upstream(name, params, info, at))
    return models_import.add_models(entries, tree), names


FALLBACK_SECTIONS = ("router_settings", "litellm_settings")


def _fallbacks(data: dict[str, Any], lines: dict[Any, int], file: str, documents: dict[str, dict[str, Any]], names: dict[str, str], tree: TenantTree) -> None:
    """LiteLLM's `fallbacks: [{model: [fallback, …]}]` → `Model.fallbacks`, in the order given
    (`router_settings` first, then `litellm_settings`)."""
    report = tree.report
    given = [s for s in FALLBACK_SECTIONS if isinstance(data.get(s), dict) and data[s].get("fallbacks") not in (None, [])]
    if len(given) > 1:
        report.add("review", f"{file}:{lines.get((given[0], 'fallbacks'), 1)}", "fallbacks are given in both router_settings and litellm_settings: a model's Cockpit fallbacks are those of router_settings, then those of litellm_settings; check that order")
    edges: dict[str, list[str]] = {name: list(d.get("fallbacks", [])) for name, d in documents.items()}
    for section in given:
        listed = data[section]["fallbacks"]
        if not isinstance(listed, list):
            report.add("dropped", f"{file}:{lines.get((section, 'fallbacks'), 1)}", f"{section}.fallbacks is not a list of {{model: [fallback, …]}}; no fallbacks are carried over from it")
            continue
        for index, item in enumerate(listed):
            at = f"{file}:{lines.get((section, 'fallbacks', index), lines.get((section, 'fallbacks'), 1))}"
            if not isinstance(item, dict):
                report.add("dropped", at, f"{section}.fallbacks entry {item!r} is not a mapping of a model to its fallbacks")
                continue
            for source, targets in item.items():
                model = names.get(str(source).strip())
                targets = targets if isinstance(targets, list) else [targets]
                if model not in documents:
                    report.add("dropped", at, f"fallbacks of {source!r} ({', '.join(map(str, targets))}): {source!r} is not a model of the imported model_list")
                    continue
                for target in targets:
                    fallback = names.get(str(target).strip())
                    if fallback not in documents:
                        report.add("dropped", at, f"fallback {target!r} of model {model}: {target!r} is not a model of the imported model_list")
                    elif fallback == model:
                        report.add("dropped", at, f"fallback {target!r} of model {model}: a model is not its own fallback in Cockpit (its deployments are tried first already)")
                    elif fallback in edges[model]:
                        continue
                    elif _reaches(edges, fallback, model):
                        report.add("dropped", at, f"fallback {fallback} of model {model}: {fallback} leads back to {model} through its own fallbacks, and Cockpit refuses fallback cycles")
                    else:
                        edges[model].append(fallback)
                        documents[model]["fallbacks"] = edges[model]
    for document in documents.values():  # after the deployments, before pricing, as export writes them
        if "fallbacks" in document:
            document["fallbacks"] = document.pop("fallbacks")
            document["pricing"] = document.pop("pricing")


def _reaches(edges: dict[str, list[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, []))
    return False


def _proxy_budget(settings: dict[str, Any], at: str, account: dict[str, Any], tree: TenantTree) -> None:
    """The proxy-wide `max_budget` → the account's monthly credits, when its duration maps."""
    budget, duration = settings.get("max_budget"), str(settings.get("budget_duration") or "")
    if budget is None:
        return
    cycle = "monthly" if duration in MONTHLY else "quarterly" if duration in QUARTERLY else None
    if cycle is None:
        tree.report.add("dropped", at, f"litellm_settings.max_budget {budget} per {duration or 'lifetime'}: Cockpit's budget cycles are calendar months and quarters; set allocation.monthly_credits by hand")
        return
    credits = round(float(budget), 2)
    account["allocation"] = {"monthly_credits": int(credits) if credits.is_integer() else credits}
    tree.add("budgets/litellm.yaml", {"apiVersion": API_VERSION, "kind": "BudgetPlan", "account": account["name"], "name": "litellm", **({"cycle": cycle} if cycle != "monthly" else {})})
    tree.report.add("changed", at, f"litellm_settings.max_budget {budget} per {duration} is the account's monthly_credits ({credits} credits at credit_factor 1), in the {cycle} calendar cycle of budget plan litellm (LiteLLM's window started at its first reset, Cockpit's at the calendar {cycle[:-2]} start)")


def _read_database(url: str) -> dict[str, list[Row]]:
    try:
        engine = sa.create_engine(normalise_database_url(url))
    except Exception:  # noqa: BLE001 — a malformed URL; its text may hold a password
        raise ImportFailure("cannot use the database URL: check its form (postgresql://USER@HOST:PORT/NAME)") from None
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(sa.text("SET TRANSACTION READ ONLY"))
            rows = {
                table: [dict(r._mapping) for r in connection.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY "{order}"'))]
                for table, order in TABLES.items()
            }
            stored = connection.execute(sa.text("""SELECT to_regclass('"LiteLLM_ProxyModelTable"')""")).scalar()
            rows[STORED_MODELS] = [] if stored is None else [
                dict(r._mapping) for r in connection.execute(sa.text(f'SELECT model_id, model_name FROM "{STORED_MODELS}" ORDER BY model_name'))
            ]
            return rows
    except ProgrammingError as exc:
        raise ImportFailure(f"the database does not look like LiteLLM's: {str(exc.orig).splitlines()[0]}") from None
    except DBAPIError as exc:
        raise ImportFailure(f"Database not connected: {str(exc.orig).splitlines()[0]}") from None
    finally:
        engine.dispose()


def _listed(row: Row) -> set[str] | None:
    """A models list as LiteLLM reads it: None for "every model"."""
    models = {m for m in (row.get("models") or []) if m}
    return None if not models or models & set(ALL_MODELS) else models


class _Directory:
    """LiteLLM's organizations, teams and users → a console Directory and ModelAccess."""

    def __init__(self, rows: dict[str, list[Row]], account: str, catalog: set[str], tree: TenantTree, account_doc: dict[str, Any]) -> None:
        self.rows, self.account, self.catalog, self.tree = rows, account, sorted(catalog), tree
        self.report = tree.report
        self.account_doc = account_doc
        self.emails: dict[str, str] = {}
        self.grants: list[dict[str, Any]] = []
        self.limits: list[dict[str, Any]] = []
        self.limits_from: list[str] = []

    def run(self) -> int:
        users = self._users()
        orgs, team_scopes = self._orgs_and_teams()
        self._members(orgs, team_scopes)
        self._keys()
        for row in self.rows[STORED_MODELS]:
            self.report.add("dropped", row_at(STORED_MODELS, row, "model_id"), f"model {row['model_name']!r} was added through LiteLLM's UI or API (store_model_in_db); its litellm_params are encrypted with LiteLLM's salt key, so it is not read: add it to model_list and import again")
        org_list = []
        for org in orgs.values():
            for team in org["teams"]:
                if not team["members"]:
                    del team["members"]
            if not org["teams"]:
                del org["teams"]
            if not org["admins"]:
                del org["admins"]
            org_list.append(org)
        if users or org_list:
            self.tree.add("directory/console.yaml", {"apiVersion": API_VERSION, "kind": "Directory", "account": self.account, "domain": "console", "users": users, "orgs": org_list})
        if self.limits:
            limits = sorted(self.limits, key=lambda limit: ("org:", "team:", "user:").index(limit["scope"].split(":", 1)[0] + ":"))
            self.tree.add("access/rate_limits.yaml", {"apiVersion": API_VERSION, "kind": "RateLimits", "account": self.account, "domain": "console", "limits": limits})
            self.report.add("changed", f"{', '.join(sorted(self.limits_from))} (rpm_limit, tpm_limit)", "LiteLLM counted a call against the limits of the one team of the key that made it; Cockpit counts a user's call against every limit of their chain (the account, each of their orgs and teams, the user), so a member of several limited teams is held to each, whichever team's key they used")
        if self.catalog:
            grants = [{"model": m, "scope": "account"} for m in self.catalog] + self.grants
            self.tree.add("access/models.yaml", {"apiVersion": API_VERSION, "kind": "ModelAccess", "account": self.account, "domain": "console", "grants": grants})
            self.report.add("changed", "LiteLLM_TeamTable, LiteLLM_UserTable, LiteLLM_OrganizationTable (models)", "LiteLLM lets a scope with an empty models list use every model, where Cockpit denies what is not granted: the account is granted every catalog model, and a non-empty models list narrows its org, team or user to those models (deny grants for the others)")
        return len(users)

    def _models_of(self, row: Row, scope: str, at: str) -> None:
        models = [m for m in (row.get("models") or []) if m]
        if not models or any(m in ALL_MODELS for m in models):
            return
        listed = set()
        for model in models:
            if model in self.catalog:
                listed.add(model)
            else:
                self.report.add("dropped", at, f"{scope} lists model {model!r}, which is not a model of the config's model_list")
        for model in self.catalog:
            self.grants.append({"model": model, "scope": scope, **({} if model in listed else {"access": "deny"})})

    def _limits(self, row: Row, scope: str, at: str) -> None:
        """The row's `rpm_limit`/`tpm_limit` → a console rate limit of `scope`."""
        limit: dict[str, Any] = {}
        for column, key in (("rpm_limit", "rpm"), ("tpm_limit", "tpm")):
            if row.get(column) is None:
                continue
            value = models_import.whole_number(row[column], RATE_MAX)
            if value is None:
                self.report.add("dropped", at, f"{scope}: {column} = {row[column]} is not carried over: a Cockpit rate limit is a whole number from 1 to {RATE_MAX} (to stop a scope's calls, take away its model grants)")
            else:
                limit[key] = value
        if not limit:
            return
        if any(existing["scope"] == scope for existing in self.limits):
            self.report.add("dropped", at, f"{scope}: a second rate limit ({', '.join(f'{k} = {v}' for k, v in limit.items())}) for a scope that has one already; the first is kept")
            return
        self.limits.append({"scope": scope, **limit})
        rates = ", ".join(f"{key}_limit = {value}" for key, value in limit.items())
        self.report.add("changed", at, f"{scope}: {rates} is carried over as a console rate limit of {scope} in access/rate_limits.yaml")
        table = at.split(" ", 1)[0]
        if table not in self.limits_from:
            self.limits_from.append(table)

    def _budget(self, row: Row, scope: str, at: str) -> None:
        if row.get("max_budget") is not None:
            self.report.add("dropped", at, f"{scope}: max_budget {row['max_budget']} per {row.get('budget_duration') or 'lifetime'} is not carried over: Cockpit caps console spend for the whole account (allocation.monthly_credits); budgets of orgs, teams and users are copilot's")

    def _users(self) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        seen: set[str] = set()
        for row in self.rows["LiteLLM_UserTable"]:
            at = row_at("LiteLLM_UserTable", row, "user_id")
            email = (row.get("user_email") or "").strip().lower()
            if "@" not in email or " " in email:
                self.report.add("dropped", at, f"user {row['user_id']} has no e-mail address; Cockpit keys users by e-mail (their keys and memberships stay behind)")
                continue
            self.emails[row["user_id"]] = email
            if email != row["user_email"]:
                self.report.add("renamed", at, f"user {row['user_email']!r} is {email} (e-mail addresses are compared case-insensitively; the config writes them lower-case)")
            if email in seen:
                self.report.add("dropped", at, f"user {row['user_id']} has the e-mail address of another user ({email}); only the first user's models list, budget and rate limits are carried over")
                continue
            seen.add(email)
            user: dict[str, Any] = {"email": email}
            if row.get("user_alias"):
                user["display_name"] = row["user_alias"]
            users.append(user)
            if row.get("user_role") == "proxy_admin":
                self.account_doc.setdefault("admins", []).append({"email": email})
                self.report.add("changed", at, f"{email} was a LiteLLM proxy_admin (admin of the whole proxy); Cockpit makes them an admin of this account")
            self._models_of(row, f"user:{email}", at)
            self._budget(row, f"user:{email}", at)
            self._limits(row, f"user:{email}", at)
        return users

    def _orgs_and_teams(self) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[dict[str, Any], str]]]:
        budgets = {r["budget_id"]: r for r in self.rows["LiteLLM_BudgetTable"]}
        names = UniqueNames()
        orgs: dict[str, dict[str, Any]] = {}
        for row in self.rows["LiteLLM_OrganizationTable"]:
            at = row_at("LiteLLM_OrganizationTable", row, "organization_id")
            name = names.claim(slug(row.get("organization_alias"), "org"))
            if name != row.get("organization_alias"):
                self.report.add("renamed", at, f"organization {row.get('organization_alias')!r} is org {name!r}")
            orgs[row["organization_id"]] = {"name": name, "admins": [], "teams": []}
            self._models_of(row, f"org:{name}", at)
            budget = budgets.get(row.get("budget_id"))
            if budget:
                self._budget(budget, f"org:{name}", at)
                self._limits(budget, f"org:{name}", at)
        team_names: dict[str, UniqueNames] = defaultdict(UniqueNames)
        teams: dict[str, tuple[dict[str, Any], str]] = {}
        for row in self.rows["LiteLLM_TeamTable"]:
            at = row_at("LiteLLM_TeamTable", row, "team_id")
            org = orgs.get(row.get("organization_id"))
            if org is None:
                if "*none*" not in orgs:
                    orgs["*none*"] = {"name": names.claim("default"), "admins": [], "teams": []}
                    self.report.add("changed", "LiteLLM_TeamTable (organization_id NULL)", f"teams in no organization are put in org {orgs['*none*']['name']!r}: Cockpit's teams belong to an org")
                org = orgs["*none*"]
            wanted = row.get("team_alias") or row["team_id"]
            name = team_names[org["name"]].claim(slug(wanted, "team"))
            if name != wanted:
                self.report.add("renamed", at, f"team {wanted!r} is team {org['name']}/{name}")
            team = {"name": name, "members": []}
            org["teams"].append(team)
            scope = f"team:{org['name']}/{name}"
            teams[row["team_id"]] = (team, scope)
            self._models_of(row, scope, at)
            self._budget(row, scope, at)
            self._limits(row, scope, at)
            if row.get("blocked"):
                self.report.add("review", at, f"{scope} was blocked in LiteLLM; Cockpit has no blocked teams: remove its model grants or its members")
        return orgs, teams

    def _members(self, orgs: dict[str, dict[str, Any]], teams: dict[str, tuple[dict[str, Any], str]]) -> None:
        roles: dict[tuple[str, str], str] = {}
        for team_row in self.rows["LiteLLM_TeamTable"]:
            for member in team_row.get("members_with_roles") or []:
                if isinstance(member, dict) and member.get("user_id"):
                    key = (team_row["team_id"], member["user_id"])
                    roles[key] = "admin" if member.get("role") == "admin" or roles.get(key) == "admin" else "member"
            for user_id in team_row.get("admins") or []:
                roles[(team_row["team_id"], user_id)] = "admin"
        budgets = {r["budget_id"]: r for r in self.rows["LiteLLM_BudgetTable"]}
        for row in self.rows["LiteLLM_TeamMembership"]:
            roles.setdefault((row["team_id"], row["user_id"]), "member")
            if row.get("budget_id"):
                budget = budgets.get(row["budget_id"]) or {}
                rates = ", ".join(f"{k} = {budget[k]}" for k in ("rpm_limit", "tpm_limit") if budget.get(k) is not None)
                also = f"; nor its {rates}: Cockpit limits a user in every team alike (a user: limit) or each user of a team (per_user), not one user within one team" if rates else ""
                self.report.add("dropped", row_at("LiteLLM_TeamMembership", row, "user_id"), f"the budget of {self.emails.get(row['user_id'], row['user_id'])} within team {row['team_id']} (budget {row['budget_id']}) is not carried over: budgets below the account are copilot's{also}")
        for row in self.rows["LiteLLM_UserTable"]:
            for team_id in row.get("teams") or []:
                roles.setdefault((team_id, row["user_id"]), "member")
        for (team_id, user_id), role in sorted(roles.items()):
            found, email = teams.get(team_id), self.emails.get(user_id)
            if found is None or email is None:
                self.report.add("dropped", f"LiteLLM_TeamTable team_id={team_id}", f"membership of user {user_id}: the {'team' if found is None else 'user'} was not imported")
                continue
            team, _ = found
            if any(m["user"] == email for m in team["members"]):
                continue
            team["members"].append({"user": email, **({"role": "admin"} if role == "admin" else {})})
        self._narrower_lists(roles)
        for row in self.rows["LiteLLM_OrganizationMembership"]:
            org, email = orgs.get(row["organization_id"]), self.emails.get(row["user_id"])
            if org is None or email is None:
                continue
            if row.get("user_role") in ("org_admin", "proxy_admin") and email not in org["admins"]:
                org["admins"].append(email)

    def _narrower_lists(self, memberships: dict[tuple[str, str], str]) -> None:
        """LiteLLM intersects a user's list with their team's, and a team's with its org's;
        Cockpit's most specific grant decides. Report where the two part ways."""
        lists = {("team", r["team_id"]): _listed(r) for r in self.rows["LiteLLM_TeamTable"]}
        lists.update({("org", r["organization_id"]): _listed(r) for r in self.rows["LiteLLM_OrganizationTable"]})
        pairs = [(("user", u), ("team", t)) for t, u in memberships]
        pairs += [(("team", r["team_id"]), ("org", r.get("organization_id"))) for r in self.rows["LiteLLM_TeamTable"]]
        users = {("user", r["user_id"]): _listed(r) for r in self.rows["LiteLLM_UserTable"]}
        for inner, outer in pairs:
            own, parent = users.get(inner) or lists.get(inner), lists.get(outer)
            wider = sorted((own or set()) - parent) if own and parent else []
            wider = [m for m in wider if m in self.catalog]
            if wider:
                self.report.add("review", f"LiteLLM_{'User' if inner[0] == 'user' else 'Team'}Table {inner[0]}_id={inner[1]}", f"lists {', '.join(wider)}, which its {outer[0]} {outer[1]} does not: LiteLLM intersected the two, Cockpit's more specific grant allows them")

    def _keys(self) -> None:
        owners: dict[str, list[str]] = defaultdict(list)
        limited: dict[str, list[str]] = defaultdict(list)
        for row in self.rows["LiteLLM_VerificationToken"]:
            owner = self.emails.get(row.get("user_id")) or (f"team {row['team_id']}" if row.get("team_id") else "no user or team")
            alias = str(row.get("key_alias") or "unnamed")  # key_name shows part of the key
            owners[owner].append(alias)
            rates = " ".join(f"{k} {row[k]}" for k in ("rpm_limit", "tpm_limit") if row.get(k) is not None)
            if rates:
                limited[owner].append(f"{alias}: {rates}")
        for owner, aliases in sorted(owners.items()):
            rates = f"; nor their rate limits ({', '.join(sorted(limited[owner]))}): Cockpit limits scopes in RateLimits, not keys" if limited.get(owner) else ""
            self.report.add("dropped", "LiteLLM_VerificationToken", f"{len(aliases)} virtual key(s) of {owner} ({', '.join(sorted(aliases))}) are not moved: issue Cockpit keys with `cockpit keys create`{rates}")
