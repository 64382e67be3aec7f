"""The second validation pass: rules across documents, each kind's hung off its descriptor.

Runs only over schema-valid documents, so every rule can trust types and forms and is left with
meaning: references resolve, keys are unique, budgets fit, secrets are references.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from cockpit.config import budget_rules
from cockpit.config.diagnostics import Diagnostics, Location, did_you_mean
from cockpit.config.source import NodeRef
from cockpit.config.references import Resolver, report_duplicate
from cockpit.config.tenant import Declared, Tenant
from cockpit.config.secrets import reference_problem, secret_fields
from cockpit.config.types import EMAIL_PATTERN
from cockpit.config.roles import claims_role_key, platform_role_keys, produced_role_keys
from cockpit.patterns import pattern_problem
from cockpit.config.descriptor import Registry

EMAIL = re.compile(EMAIL_PATTERN)


def check(tenant: Tenant, diagnostics: Diagnostics, registry: Registry, repo_root: Path) -> None:
    """Every kind's rules, after the secret references of all of them. An account-scoped kind's
    rules see only documents whose account resolves (the others are reported once, here)."""
    resolver = Resolver(tenant, diagnostics)
    _secrets(tenant, registry, repo_root, diagnostics)
    for descriptor in registry:
        if descriptor.rules is None:
            continue
        declared = tenant.of(descriptor.kind)
        if descriptor.account_scoped:
            declared = [d for d in declared if resolver.account(d)]
        descriptor.rules(declared, tenant, resolver)
    if tenant.unchecked:
        where, file = tenant.unparsed[0]
        files = file if len(tenant.unparsed) == 1 else ", ".join(f for _, f in tenant.unparsed)
        diagnostics.warning(
            where,
            f"{tenant.unchecked} reference{'' if tenant.unchecked == 1 else 's'} not checked: "
            f"what they name may be declared in {files}, which does not parse; fix "
            f"{'it' if len(tenant.unparsed) == 1 else 'them'} and validate again",
        )


def _secrets(tenant: Tenant, registry: Registry, repo_root: Path, diagnostics: Diagnostics) -> None:
    for kind, declared_list in tenant.by_kind.items():
        descriptor = registry.get(kind)
        if descriptor is None or not descriptor.secret_fields:
            continue
        for declared in declared_list:
            for path, value in secret_fields(descriptor, declared.source.data):
                problem = reference_problem(value, declared.source.path, repo_root)
                if problem:
                    diagnostics.error(declared.at(*path), f"'{path[-1]}' {problem}")


def _zitadel(declared: Declared, diagnostics: Diagnostics) -> None:
    """Mapped roles carry the account's prefix: a shared project's other roles are not ours.
    No produced key is a platform super-admin role (`platform_role_keys`, case-insensitively)
    and no two standard roles share a key: either would hand the account's people a role that
    is not what its config says. (A prefix such as `super_` is fine: the plan never treats a
    platform role as the account's, even one with its prefix.)"""
    zitadel = declared.model.zitadel
    if zitadel is None:
        return
    prefix = zitadel.role_prefix
    for base, role in zitadel.role_mappings.items():
        if not role.startswith(prefix):
            diagnostics.error(
                declared.at("zitadel", "role_mappings", base),
                f"role '{role}' does not start with the account's role_prefix "
                f"'{prefix}'; an account may only use roles with its own prefix",
            )
    platform = platform_role_keys()
    seen: dict[str, str] = {}
    for base, key in produced_role_keys(prefix, zitadel.role_mappings).items():
        where = _role_key_field(declared, zitadel.role_mappings, base)
        if key.casefold() in platform:
            diagnostics.error(
                where,
                f"role key '{key}' for {base} is a platform super-admin role (super_admin, "
                "ZITADEL_SUPER_ADMIN_ROLES); a tenant can never create or grant it: "
                f"use a key of the account's own, e.g. '{prefix or declared.model.name + '_'}{base}'",
            )
        elif key.casefold() in seen:
            diagnostics.error(
                where,
                f"role key '{key}' for {base} is already the key of {seen[key.casefold()]}; each "
                "standard role needs its own key, or one role's people get the other's rights",
            )
        seen.setdefault(key.casefold(), base)
    for email in zitadel.users:
        if not EMAIL.match(email):
            diagnostics.error(
                declared.at("zitadel", "users", email, key=True),
                f"'{email}' is not an e-mail address; zitadel.users maps e-mails to user ids",
            )


def _role_key_field(declared: Declared, mappings: dict[str, str], base: str) -> Location:
    """Where a produced role key comes from: its mapping, else the prefix (or `zitadel`)."""
    if base in mappings:
        return declared.at("zitadel", "role_mappings", base)
    return declared.at("zitadel", "role_prefix")


def _zitadel_projects(accounts: list[Declared], diagnostics: Diagnostics) -> None:
    """Accounts sharing a Zitadel project never produce or claim each other's role keys: a key
    of two accounts would be granted by one to its people with the other's meaning (account B
    mapping end_user to acme_account_admin makes B's users acme's admins)."""
    by_project: dict[str, list[Declared]] = {}
    for declared in accounts:
        zitadel = declared.model.zitadel
        if zitadel is not None and zitadel.project_id:
            by_project.setdefault(zitadel.project_id, []).append(declared)
    for project, members in by_project.items():
        for i, later in enumerate(members):
            for earlier in members[:i]:
                theirs = earlier.model.zitadel
                for location, message in role_key_conflicts(later, earlier.model.name, theirs.role_prefix, theirs.role_mappings, str(earlier.at("name"))):
                    diagnostics.error(location, message)


def role_key_conflicts(
    declared: Declared, other: str, other_prefix: str, other_mappings: Mapping[str, str], where: str
) -> list[tuple[Location, str]]:
    """The fields of `declared`'s zitadel settings whose keys collide with those of account
    `other` (its role_prefix and role_mappings, declared at `where`) in the same project: one
    of its keys the other produces or its prefix claims, or one of the other's keys this
    account's prefix claims. Also used at plan time against accounts of the database."""
    zitadel = declared.model.zitadel
    project = zitadel.project_id
    mine = produced_role_keys(zitadel.role_prefix, zitadel.role_mappings)
    theirs = produced_role_keys(other_prefix, other_mappings)
    found: dict[Location, str] = {}
    for base, key in mine.items():
        if claims_role_key(other_prefix, theirs.values(), key):
            found.setdefault(
                _role_key_field(declared, zitadel.role_mappings, base),
                f"role key '{key}' for {base} belongs to account '{other}' ({where}) in Zitadel "
                f"project {project}; this account's people would get that account's role: use "
                "keys with this account's own role_prefix",
            )
    for key in theirs.values():
        if claims_role_key(zitadel.role_prefix, (), key):
            found.setdefault(
                declared.at("zitadel", "role_prefix"),
                f"role_prefix '{zitadel.role_prefix}' claims role key '{key}' of account '{other}' "
                f"({where}) in Zitadel project {project}, which this account's apply would remove "
                "or take from grants; choose a prefix no other account's keys start with",
            )
    return list(found.items())


def account_rules(accounts: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    diagnostics = resolver.diagnostics
    domains: dict[str, Declared] = {}
    for declared in accounts:
        account = declared.model
        if account.email_domain:
            first = domains.setdefault(account.email_domain, declared)
            if first is not declared:
                diagnostics.error(
                    declared.at("email_domain"),
                    f"email_domain '{account.email_domain}' already belongs to account "
                    f"'{first.model.name}' ({first.at('email_domain')}); it must be unique",
                )
        seen: dict[str, NodeRef] = {}
        for i, admin in enumerate(account.admins):
            email = admin.email.lower()
            if email in seen:
                report_duplicate(diagnostics, declared, ("admins", i), f"admin '{email}'", seen[email])
            seen[email] = declared.ref("admins", i)
            _email_domain_warning(declared, ("admins", i, "email"), email, account.email_domain, diagnostics)
        _zitadel(declared, diagnostics)
        for domain in ("console", "copilot"):
            policy = getattr(account.model_policy, domain)
            for field in ("allow", "deny"):
                for i, name in enumerate(getattr(policy, field)):
                    resolver.model(declared, ("model_policy", domain, field, i), name)
    _zitadel_projects(accounts, diagnostics)


def _email_domain_warning(declared, path, email: str, domain: str | None, diagnostics) -> None:
    if domain and not email.endswith("@" + domain):
        diagnostics.warning(
            declared.at(*path),
            f"'{email}' is outside the account's email_domain '{domain}'",
        )


def _directory(declared: Declared, tenant: Tenant, resolver: Resolver) -> None:
    diagnostics = resolver.diagnostics
    directory = declared.model
    account = tenant.accounts[directory.account].model
    index = tenant.directory(directory.account, directory.domain)
    where = f"the {directory.domain} directory of '{directory.account}'"
    for i, user in enumerate(directory.users):
        _email_domain_warning(declared, ("users", i, "email"), user.email.lower(), account.email_domain, diagnostics)

    def known_user(path: tuple, email: str) -> None:
        if email.lower() not in index.users and not resolver.unchecked():
            diagnostics.error(
                declared.at(*path),
                f"unknown user '{email}' in {where}; list it under users"
                f"{did_you_mean(email.lower(), index.names('user'))}",
            )

    for i, org in enumerate(directory.orgs):
        admins: dict[str, NodeRef] = {}
        for a, email in enumerate(org.admins):
            known_user(("orgs", i, "admins", a), email)
            if email.lower() in admins:
                report_duplicate(diagnostics, declared, ("orgs", i, "admins", a), f"admin '{email.lower()}'", admins[email.lower()])
            admins.setdefault(email.lower(), declared.ref("orgs", i, "admins", a))
        for j, team in enumerate(org.teams):
            seen: dict[str, NodeRef] = {}
            for m, member in enumerate(team.members):
                path = ("orgs", i, "teams", j, "members", m)
                known_user((*path, "user"), member.user)
                email = member.user.lower()
                if email in seen:
                    report_duplicate(diagnostics, declared, path, f"member '{email}'", seen[email])
                seen[email] = declared.ref(*path)


def _model_access(declared: Declared, resolver: Resolver, tenant: Tenant, seen: dict) -> None:
    """Grants resolve, are unique per (account, domain) across all merged documents, and can
    take effect under the account's model policy."""
    access = declared.model
    policy = getattr(tenant.accounts[access.account].model.model_policy, access.domain)
    for i, grant in enumerate(access.grants):
        scope = resolver.scope(declared, ("grants", i, "scope"), grant.scope, access.domain)
        if scope is not None:
            _unique(resolver, declared, ("grants", i), (access.account, access.domain, grant.model, str(scope)), seen, f"grant {grant.model} for {scope}")
        if not resolver.model(declared, ("grants", i, "model"), grant.model):
            continue
        outside = grant.model in policy.deny or (policy.allow and grant.model not in policy.allow)
        if grant.access == "allow" and outside:
            resolver.diagnostics.warning(
                declared.at("grants", i, "model"),
                f"grant of '{grant.model}' can never take effect: the account's {access.domain} "
                "model_policy does not allow it",
            )


def _features(declared: Declared, resolver: Resolver, tenant: Tenant, seen: dict) -> None:
    features = declared.model
    pack = tenant.accounts[features.account].model.feature_pack.features
    for i, entitlement in enumerate(features.entitlements):
        if entitlement.feature not in pack:
            resolver.diagnostics.error(
                declared.at("entitlements", i, "feature"),
                f"feature '{entitlement.feature}' is not in the feature pack of account "
                f"'{features.account}' ({', '.join(pack) or 'empty'}); add it to "
                "feature_pack.features or remove the entitlement",
            )
        scope = resolver.scope(declared, ("entitlements", i, "scope"), entitlement.scope, features.domain)
        if scope is not None:
            _unique(resolver, declared, ("entitlements", i), (features.account, features.domain, entitlement.feature, str(scope)), seen, f"entitlement {entitlement.feature} for {scope}")


def _guardrail_preset(declared: Declared, resolver: Resolver) -> None:
    preset = declared.model
    seen: dict[str, NodeRef] = {}
    for i, pattern in enumerate(preset.patterns):
        if pattern.name in seen:
            report_duplicate(resolver.diagnostics, declared, ("patterns", i, "name"), f"pattern '{pattern.name}'", seen[pattern.name])
        seen[pattern.name] = declared.ref("patterns", i)
        problem = pattern_problem(pattern.regex)  # the proxy's engine (RE2) decides
        if problem is not None:
            resolver.diagnostics.error(declared.at("patterns", i, "regex"), f"pattern '{pattern.name}' {problem}")
    assigned: dict[str, NodeRef] = {}
    for i, scope in enumerate(preset.assign):
        if scope.startswith("agent:") and preset.domain == "console":
            resolver.diagnostics.error(
                declared.at("assign", i),
                "agents are copilot resources; a console preset cannot be assigned to one",
            )
            continue
        resolved = resolver.scope(declared, ("assign", i), scope, preset.domain)
        if resolved is not None:
            _unique(resolver, declared, ("assign", i), str(resolved), assigned, "assignment")


def _agent(declared: Declared, resolver: Resolver) -> None:
    agent = declared.model
    presets: dict[str, NodeRef] = {}
    for i, code in enumerate(agent.guardrails):
        domain = resolver.preset(declared, ("guardrails", i), code)
        if domain == "console":
            resolver.diagnostics.error(
                declared.at("guardrails", i),
                f"preset '{code}' is a console preset; agents need copilot presets",
            )
        _unique(resolver, declared, ("guardrails", i), code, presets, "guardrail")
    _grants(declared, resolver, [(("grants", i), s) for i, s in enumerate(agent.grants)])


def _connection(declared: Declared, resolver: Resolver) -> None:
    connection = declared.model
    if connection.type == "composio":
        mode = connection.config.get("auth_mode")
        normalised = mode.strip().lower() if isinstance(mode, str) else mode
        if normalised not in ("oauth", "api_key"):
            path = ("config", "auth_mode") if "auth_mode" in connection.config else ("config",)
            resolver.diagnostics.error(
                declared.at(*path),
                "composio connections need config.auth_mode: oauth or api_key",
            )
        elif normalised == "api_key" and "api_key" not in connection.secret:
            resolver.diagnostics.error(
                declared.at("secret") if connection.secret else declared.at("config", "auth_mode"),
                "composio api_key mode needs secret.api_key: ${env:NAME} or ${file:PATH}",
            )
    _grants(declared, resolver, [(("grants", i, "scope"), g.scope) for i, g in enumerate(connection.grants)])


def _marketplace(declared: Declared, resolver: Resolver) -> None:
    listing = declared.model
    resolver.entity(declared, ("entity",), listing.entity)
    _grants(declared, resolver, [(("grants", i), s) for i, s in enumerate(listing.grants)])


def _grants(declared: Declared, resolver: Resolver, grants: list[tuple[tuple, str]]) -> None:
    """Copilot-directory grants of agents, connections and listings: resolve, no duplicates."""
    seen: dict[str, NodeRef] = {}
    for path, text in grants:
        scope = resolver.scope(declared, path, text, "copilot")
        if scope is not None:
            _unique(resolver, declared, path, str(scope), seen, "grant")


def _unique(resolver: Resolver, declared: Declared, path, key, seen: dict, what: str) -> None:
    if key in seen:
        shown = f"{what} '{key}'" if isinstance(key, str) else what
        report_duplicate(resolver.diagnostics, declared, path, shown, seen[key])
    else:
        seen[key] = declared.ref(*path)


# --- The rules of each kind, as its descriptor holds them -----------------------------------


def directory_rules(directories: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    for declared in directories:
        _directory(declared, tenant, resolver)


def model_access_rules(documents: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    seen: dict[tuple[str, ...], NodeRef] = {}
    for declared in documents:
        _model_access(declared, resolver, tenant, seen)


def features_rules(documents: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    seen: dict[tuple[str, ...], NodeRef] = {}
    for declared in documents:
        _features(declared, resolver, tenant, seen)


def guardrail_preset_rules(presets: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    for declared in presets:
        _guardrail_preset(declared, resolver)


def agent_rules(agents: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    for declared in agents:
        _agent(declared, resolver)


def connection_rules(connections: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    for declared in connections:
        _connection(declared, resolver)


def marketplace_rules(listings: list[Declared], tenant: Tenant, resolver: Resolver) -> None:
    for declared in listings:
        _marketplace(declared, resolver)


budget_plan_rules = budget_rules.check
