"""State → config documents: the inverse of `cockpit.resources.desired`, kind by kind.

Each function here undoes one expander of desired.py: it gathers the resources an account's
document of that kind became and writes the document back, omitting fields that hold their
default, so that validating and expanding the result gives the same resources again. Scopes go
back to their names (`team:research/ml`), secrets stay the references they were stored as.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Iterator

from cockpit.config.models import API_VERSION
from cockpit.export.budgets import EqualShare, regroup
from cockpit.credits import to_cents
from cockpit.config.scopes import Scope
from cockpit.resources.state import Key, Resource, State

Document = dict[str, Any]

DEFAULT_GLOBAL_DESCRIPTION = "Default global organization"
"""What desired.py gives copilot's implicit org `global` when no document declares it."""

EXPORTED_TYPES = frozenset(
    {
        "account", "account_admin", "account_sso", "model",
        *(f"{d}_{t}" for d in ("console", "copilot") for t in ("org", "user", "team", "team_member", "org_admin")),
        "model_grant", "feature_entitlement",
        "guardrail_preset", "guardrail_pattern", "guardrail_assignment",
        "agent", "agent_guardrail", "agent_grant",
        "connection", "connection_grant",
        "marketplace_listing", "marketplace_grant",
        "budget_plan", "budget_allocation", "budget_override",
    }
)
"""Every resource type the export writes back (a test keeps this equal to types.py)."""

_SCOPE_ORDER = {"account": 0, "pool": 1, "org": 2, "team": 3, "user": 4, "agent": 5}


class AccountResources:
    """One account's resources by type, each list in key order, with children by parent key."""

    def __init__(self, state: State, account: str) -> None:
        self.account = account
        self._by_type: dict[str, list[Resource]] = defaultdict(list)
        for resource in state:
            if resource.account == account:
                self._by_type[resource.type].append(resource)
            elif resource.account is None and resource.type == "model":
                self._by_type["model"].append(resource)
        for resources in self._by_type.values():
            resources.sort(key=lambda r: r.key)
        self._children: dict[tuple[str, int], dict[Key, list[Resource]]] = {}

    def of(self, type_name: str) -> list[Resource]:
        return self._by_type.get(type_name, [])

    def children(self, type_name: str, parent_key: Key) -> list[Resource]:
        """Resources of `type_name` whose key starts with `parent_key` (grouped once per type)."""
        width = len(parent_key)
        grouped = self._children.get((type_name, width))
        if grouped is None:
            grouped = defaultdict(list)
            for resource in self.of(type_name):
                grouped[resource.key[:width]].append(resource)
            self._children[(type_name, width)] = grouped
        return grouped.get(parent_key, [])

    def types(self) -> set[str]:
        return {t for t, resources in self._by_type.items() if resources}


# --- helpers -------------------------------------------------------------------------------


def _header(kind: str, account: str | None = None) -> Document:
    document: Document = {"apiVersion": API_VERSION, "kind": kind}
    if account is not None:
        document["account"] = account
    return document


def _put(document: Document, name: str, value: Any, default: Any = None) -> None:
    """Set `name` unless it holds its default (booleans never equal numbers here)."""
    if value == default and isinstance(value, bool) == isinstance(default, bool):
        return
    document[name] = value


def _protect(document: Document, resource: Resource) -> None:
    if resource.protect:
        document["protect"] = True


def number(value: float | int | None) -> float | int | None:
    """Credits and prices as people write them: 600, not 600.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def scope_text(scope_type: str, scope_key: str) -> str:
    return str(Scope(scope_type, scope_key))


def _scope_sort(scope_type: str, scope_key: str) -> tuple[int, str]:
    return (_SCOPE_ORDER.get(scope_type, 9), scope_key)


def _scopes(resources: Iterable[Resource]) -> list[str]:
    """The scopes of grant-like resources whose key ends in (scope_type, scope_key)."""
    keys = sorted(((r.key[-2], r.key[-1]) for r in resources), key=lambda k: _scope_sort(*k))
    return [scope_text(*k) for k in keys]


def _without(mapping: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in mapping.items():
        if value is None:
            continue
        _put(result, name, value, defaults.get(name))
    return result


def _ordered(mapping: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """Known keys in the model's order (JSONB reorders them), then any others."""
    first = {name: mapping[name] for name in order if name in mapping}
    return {**first, **{k: v for k, v in mapping.items() if k not in first}}


# --- Account and catalog -------------------------------------------------------------------


def account_document(res: AccountResources) -> Document:
    account = next(r for r in res.of("account") if r.key == (res.account,))
    fields = account.fields
    document = _header("Account")
    document["name"] = res.account
    _protect(document, account)
    _put(document, "alias", fields["alias"])
    _put(document, "description", fields["description"])
    _put(document, "email_domain", fields["email_domain"])
    _put(document, "status", fields["status"], "active")
    admins = []
    for admin in res.of("account_admin"):
        entry = {"email": admin.key[0]}
        _put(entry, "role", admin.fields["role"], "account_admin")
        admins.append(entry)
    _put(document, "admins", admins, [])
    for sso in res.of("account_sso"):
        document["sso"] = _without(dict(sso.fields), {"enabled": False, "settings": {}})
    allocation = _without(
        {name: number(fields[name]) for name in ("monthly_credits", "overflow_limit", "credit_factor")},
        {"monthly_credits": 0, "overflow_limit": 0, "credit_factor": 1},
    )
    _put(document, "allocation", allocation, {})
    pack = fields["feature_pack"] or {}
    _put(document, "feature_pack", _without(_ordered(pack, ("features", "config")), {"features": [], "config": {}}), {})
    policy = {}
    for domain in ("console", "copilot"):
        ceiling = _without(dict((fields["model_policy"] or {}).get(domain) or {}), {"allow": [], "deny": []})
        _put(policy, domain, _ordered(ceiling, ("allow", "deny")), {})
    _put(document, "model_policy", policy, {})
    zitadel = fields["zitadel"] or {}
    if zitadel:  # {} means no zitadel section; `zitadel: {}` would store its defaults
        order = ("project_id", "organization_id", "issuer", "role_prefix", "role_mappings", "users")
        document["zitadel"] = _without(_ordered(zitadel, order), {"role_prefix": "", "role_mappings": {}, "users": {}})
    return document


_LITELLM_ORDER = ("model", "api_base", "api_key", "api_version", "timeout", "extra_body")


def model_documents(res: AccountResources) -> list[Document]:
    documents = []
    for model in res.of("model"):
        document = _header("Model")
        document["name"] = model.key[0]
        _protect(document, model)
        _put(document, "description", model.fields["description"])
        litellm = _ordered(dict(model.fields["litellm"]), _LITELLM_ORDER)
        if "timeout" in litellm:
            litellm["timeout"] = number(litellm["timeout"])  # a float field: 120 reads back as 120.0
        document["litellm"] = _without(litellm, {"extra_body": {}})
        document["pricing"] = {
            "input_per_million": number(model.fields["input_per_million"]),
            "output_per_million": number(model.fields["output_per_million"]),
        }
        documents.append(document)
    return documents


# --- Directory, access, features -----------------------------------------------------------


def directory_document(res: AccountResources, domain: str) -> Document | None:
    users = []
    for user in res.of(f"{domain}_user"):
        entry = {"email": user.key[0]}
        _put(entry, "display_name", user.fields["display_name"])
        _put(entry, "identity_user_id", user.fields["identity_user_id"])
        _put(entry, "status", user.fields["status"], "active")
        users.append(entry)
    orgs = []
    for org in res.of(f"{domain}_org"):
        name = org.key[0]
        entry: Document = {"name": name}
        _put(entry, "description", org.fields["description"])
        admins = [admin.key[1] for admin in res.children(f"{domain}_org_admin", (name,))]
        _put(entry, "admins", admins, [])
        teams = []
        for team in res.children(f"{domain}_team", (name,)):
            team_entry: Document = {"name": team.key[1]}
            _put(team_entry, "description", team.fields["description"])
            members = []
            for member in res.children(f"{domain}_team_member", team.key):
                member_entry = {"user": member.key[2]}
                _put(member_entry, "role", member.fields["role"], "member")
                members.append(member_entry)
            _put(team_entry, "members", members, [])
            teams.append(team_entry)
        _put(entry, "teams", teams, [])
        if domain == "copilot" and name == "global" and _implicit_global(entry):
            continue
        orgs.append(entry)
    if not users and not orgs:
        return None
    document = _header("Directory", res.account)
    document["domain"] = domain
    _put(document, "users", users, [])
    _put(document, "orgs", orgs, [])
    return document


def _implicit_global(entry: Document) -> bool:
    """Copilot's org `global` as desired.py adds it when nobody declares it."""
    return set(entry) == {"name", "description"} and entry["description"] == DEFAULT_GLOBAL_DESCRIPTION


def _grant_sort(resource: Resource) -> tuple:
    """(domain, name, scope): model grants and entitlements by model/feature, then scope."""
    domain, name, scope_type, scope_key = resource.key
    return (domain, name, _scope_sort(scope_type, scope_key))


def model_access_document(res: AccountResources, domain: str) -> Document | None:
    grants = []
    for grant in sorted((g for g in res.of("model_grant") if g.key[0] == domain), key=_grant_sort):
        entry = {"model": grant.key[1], "scope": scope_text(*grant.key[2:])}
        _put(entry, "access", grant.fields["access"], "allow")
        grants.append(entry)
    if not grants:
        return None
    document = _header("ModelAccess", res.account)
    document["domain"] = domain
    document["grants"] = grants
    return document


def features_document(res: AccountResources, domain: str) -> Document | None:
    entitlements = []
    for item in sorted((e for e in res.of("feature_entitlement") if e.key[0] == domain), key=_grant_sort):
        entry = {"feature": item.key[1], "scope": scope_text(*item.key[2:])}
        _put(entry, "enabled", item.fields["enabled"], True)
        _put(entry, "config", item.fields["config"] or {}, {})
        entitlements.append(entry)
    if not entitlements:
        return None
    document = _header("Features", res.account)
    document["domain"] = domain
    document["entitlements"] = entitlements
    return document


# --- Guardrails, agents, connections, marketplace ------------------------------------------


def preset_documents(res: AccountResources) -> Iterator[Document]:
    for preset in res.of("guardrail_preset"):
        code = preset.key[0]
        document = _header("GuardrailPreset", res.account)
        document["code"] = code
        _protect(document, preset)
        document["name"] = preset.fields["name"]
        _put(document, "domain", preset.fields["domain"], "copilot")
        _put(document, "description", preset.fields["description"])
        _put(document, "config", preset.fields["config"] or {}, {})
        patterns = []
        for pattern in res.children("guardrail_pattern", (code,)):
            entry = {"name": pattern.key[1], "regex": pattern.fields["regex"]}
            _put(entry, "type", pattern.fields["type"], "detect")
            _put(entry, "enabled", pattern.fields["enabled"], True)
            _put(entry, "action", pattern.fields["action"])
            patterns.append(entry)
        _put(document, "patterns", patterns, [])
        _put(document, "assign", _scopes(res.children("guardrail_assignment", (code,))), [])
        yield document


def agent_documents(res: AccountResources) -> Iterator[Document]:
    for agent in res.of("agent"):
        name = agent.key[0]
        document = _header("Agent", res.account)
        document["name"] = name
        _protect(document, agent)
        _put(document, "description", agent.fields["description"])
        _put(document, "definition", agent.fields["definition"] or {}, {})
        document["guardrails"] = [g.key[1] for g in res.children("agent_guardrail", (name,))]
        _put(document, "grants", _scopes(res.children("agent_grant", (name,))), [])
        yield document


def connection_documents(res: AccountResources) -> Iterator[Document]:
    for connection in res.of("connection"):
        name, fields = connection.key[0], connection.fields
        document = _header("Connection", res.account)
        document["name"] = name
        _protect(document, connection)
        document["type"] = fields["type"]
        _put(document, "description", fields["description"])
        _put(document, "credential_visibility", fields["credential_visibility"], "use_only")
        _put(document, "allow_user_self_manage", fields["allow_user_self_manage"], False)
        _put(document, "config", fields["config"] or {}, {})
        _put(document, "secret", dict(fields["secret_refs"] or {}), {})
        grants = []
        for grant in sorted(res.children("connection_grant", (name,)), key=lambda g: _scope_sort(*g.key[-2:])):
            entry = {"scope": scope_text(*grant.key[-2:])}
            _put(entry, "can_manage", grant.fields["can_manage"], False)
            grants.append(entry)
        _put(document, "grants", grants, [])
        yield document


def listing_documents(res: AccountResources) -> Iterator[Document]:
    defaults = {
        "published": True, "featured": False, "verified": False,
        "pricing_model": "free", "version": "1.0.0",
    }
    for listing in res.of("marketplace_listing"):
        document = _header("MarketplaceListing", res.account)
        document["entity"] = ":".join(listing.key)
        _protect(document, listing)
        document["title"] = listing.fields["title"]
        for name in ("description", "published", "featured", "verified", "pricing_model", "version", "author"):
            _put(document, name, listing.fields[name], defaults.get(name))
        _put(document, "grants", _scopes(res.children("marketplace_grant", listing.key)), [])
        yield document


# --- Budgets -------------------------------------------------------------------------------


def budget_documents(res: AccountResources) -> Iterator[Document]:
    for plan in res.of("budget_plan"):
        name = plan.key[0]
        document = _header("BudgetPlan", res.account)
        document["name"] = name
        _protect(document, plan)
        _put(document, "cycle", plan.fields["cycle"], "monthly")
        _put(document, "active", plan.fields["active"], True)
        _put(document, "allow_overflow", plan.fields["allow_overflow"], False)
        allocations, shares = [], []
        by_scope = sorted(res.children("budget_allocation", (name,)), key=lambda a: _scope_sort(*a.key[-2:]))
        for allocation in by_scope:
            scope = scope_text(*allocation.key[-2:])
            credits, cap = allocation.fields["credits"], allocation.fields["overflow_cap"]
            if allocation.fields["source"] == "equal":
                shares.append(EqualShare(scope, to_cents(credits), None if cap is None else to_cents(cap)))
                continue
            entry = {"scope": scope, "credits": number(credits)}
            _put(entry, "overflow_cap", number(cap))
            allocations.append(entry)
        _put(document, "allocations", allocations, [])
        distributions = []
        for split in regroup(shares):
            entry = {"scopes": list(split.scopes), "total_credits": number(split.total_cents / 100)}
            if split.cap_cents is not None:
                entry["overflow_cap"] = number(split.cap_cents / 100)
            distributions.append(entry)
        _put(document, "distribute_equally", distributions, [])
        overrides = []
        for override in sorted(res.children("budget_override", (name,)), key=lambda o: _scope_sort(*o.key[-2:])):
            entry = {"scope": scope_text(*override.key[-2:]), "credits": number(override.fields["credits"])}
            _put(entry, "reason", override.fields["reason"])
            overrides.append(entry)
        _put(document, "overrides", overrides, [])
        yield document
