"""Config → desired state: each kind's documents expanded into resources.

One small function per kind, registered in `EXPANDERS`; the planner calls them through the
registry's kind names and never looks inside. Emails are lower-cased, scopes split into
(type, key), numbers rounded to what their columns store, and every resource remembers the
file and line that declared it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from cockpit.config import models
from cockpit.config.secrets import secret_fields
from cockpit.config.tenant import Declared, Tenant
from cockpit.credits import split_equally, to_cents
from cockpit.config.registry import build_registry
from cockpit.config.scopes import parse_scope
from cockpit.resources.state import Resource, State
from cockpit.resources.types import ResourceType, types_by_name

Fingerprint = Callable[[ResourceType, dict[str, str], str, Mapping[str, str]], str | None]
"""(type, secret references, base directory, where each reference is written) → HMAC
fingerprint of the resolved values."""


class _Builder:
    """Collects the resources of one document, with its origin and secret handling."""

    def __init__(self, declared: Declared, account: str | None, fingerprint: Fingerprint) -> None:
        self.declared = declared
        self.account = account
        self.fingerprint = fingerprint
        self.resources: list[Resource] = []
        self.base = str(declared.source.path.parent.resolve())

    def add(self, type_name: str, key: tuple[str, ...], path: tuple = (), protect: bool = False, **fields: Any) -> None:
        resource_type = types_by_name()[type_name]
        for name, places in resource_type.scales.items():
            if fields.get(name) is not None:
                fields[name] = round(float(fields[name]), places)
        origin = self.declared.ref(*path)
        fingerprint = None
        if resource_type.secret is not None:
            refs = resource_type.secret_refs(fields) if resource_type.secret_refs else {}
            fingerprint = self.fingerprint(resource_type, refs, self.base, self._ref_origins(refs, str(origin))) if refs else None
        self.resources.append(
            Resource(
                type_name,
                self.account,
                tuple(key),
                fields,
                secret_fingerprint=fingerprint,
                protect=protect,
                origin=origin,
                secret_base=self.base if resource_type.secret else None,
            )
        )


    def _ref_origins(self, refs: Mapping[str, str], default: str) -> dict[str, str]:
        """`file:line` of each secret reference of the document, by field name."""
        descriptor = build_registry().get(self.declared.model.kind)
        found = {path[-1]: path for path, _ in secret_fields(descriptor, self.declared.source.data)}
        origins = {}
        for name in refs:
            if name in found:
                location = self.declared.at(*found[name])
                origins[name] = str(location)
            else:
                origins[name] = default
        return origins


def _scope(text: str) -> tuple[str, str]:
    scope = parse_scope(text)
    return scope.type, scope.key


def _account(b: _Builder, a: models.Account) -> None:
    b.add(
        "account", (a.name,), protect=a.protect,
        alias=a.alias, description=a.description, email_domain=a.email_domain, status=a.status,
        monthly_credits=a.allocation.monthly_credits, overflow_limit=a.allocation.overflow_limit,
        credit_factor=a.allocation.credit_factor,
        feature_pack=a.feature_pack.model_dump(mode="json"),
        model_policy=a.model_policy.model_dump(mode="json"),
        zitadel=a.zitadel.model_dump(mode="json", exclude_none=True) if a.zitadel else {},
    )
    for i, admin in enumerate(a.admins):
        b.add("account_admin", (admin.email.lower(),), ("admins", i), role=admin.role)
    if a.sso is not None:
        b.add("account_sso", (), ("sso",), provider=a.sso.provider, enabled=a.sso.enabled, settings=dict(a.sso.settings))


def _model(b: _Builder, m: models.Model) -> None:
    b.add(
        "model", (m.name,), protect=m.protect, description=m.description,
        litellm=m.litellm.model_dump(mode="json", exclude_none=True),
        input_per_million=m.pricing.input_per_million, output_per_million=m.pricing.output_per_million,
    )


def _directory(b: _Builder, d: models.Directory) -> None:
    prefix = d.domain
    extra = {"is_default_global": False} if d.domain == "copilot" else {}
    for i, user in enumerate(d.users):
        b.add(f"{prefix}_user", (user.email.lower(),), ("users", i), display_name=user.display_name, identity_user_id=user.identity_user_id, status=user.status)
    for i, org in enumerate(d.orgs):
        fields = {**extra, "is_default_global": org.name == "global"} if extra else {}
        b.add(f"{prefix}_org", (org.name,), ("orgs", i), description=org.description, **fields)
        for a, email in enumerate(org.admins):
            b.add(f"{prefix}_org_admin", (org.name, email.lower()), ("orgs", i, "admins", a))
        for j, team in enumerate(org.teams):
            b.add(f"{prefix}_team", (org.name, team.name), ("orgs", i, "teams", j), description=team.description)
            for m, member in enumerate(team.members):
                b.add(f"{prefix}_team_member", (org.name, team.name, member.user.lower()), ("orgs", i, "teams", j, "members", m), role=member.role)


def _model_access(b: _Builder, d: models.ModelAccess) -> None:
    for i, grant in enumerate(d.grants):
        b.add("model_grant", (d.domain, grant.model, *_scope(grant.scope)), ("grants", i), access=grant.access)


def _features(b: _Builder, d: models.Features) -> None:
    for i, e in enumerate(d.entitlements):
        b.add("feature_entitlement", (d.domain, e.feature, *_scope(e.scope)), ("entitlements", i), enabled=e.enabled, config=e.config)


def _preset(b: _Builder, p: models.GuardrailPreset) -> None:
    b.add("guardrail_preset", (p.code,), protect=p.protect, name=p.name, domain=p.domain, description=p.description, config=p.config)
    for i, pattern in enumerate(p.patterns):
        b.add("guardrail_pattern", (p.code, pattern.name), ("patterns", i), regex=pattern.regex, type=pattern.type, enabled=pattern.enabled, action=pattern.action)
    for i, scope in enumerate(p.assign):
        b.add("guardrail_assignment", (p.code, *_scope(scope)), ("assign", i))


def _agent(b: _Builder, a: models.Agent) -> None:
    b.add("agent", (a.name,), protect=a.protect, description=a.description, definition=a.definition)
    for i, code in enumerate(a.guardrails):
        b.add("agent_guardrail", (a.name, code), ("guardrails", i))
    for i, scope in enumerate(a.grants):
        b.add("agent_grant", (a.name, *_scope(scope)), ("grants", i))


def _connection(b: _Builder, c: models.Connection) -> None:
    b.add(
        "connection", (c.name,), protect=c.protect, type=c.type, description=c.description,
        credential_visibility=c.credential_visibility, allow_user_self_manage=c.allow_user_self_manage,
        config=c.config, secret_refs=dict(c.secret),
    )
    for i, grant in enumerate(c.grants):
        b.add("connection_grant", (c.name, *_scope(grant.scope)), ("grants", i), can_manage=grant.can_manage)


def _listing(b: _Builder, m: models.MarketplaceListing) -> None:
    entity = tuple(m.entity.split(":", 1))
    b.add(
        "marketplace_listing", entity, protect=m.protect, title=m.title, description=m.description,
        published=m.published, featured=m.featured, verified=m.verified,
        pricing_model=m.pricing_model, version=m.version, author=m.author,
    )
    for i, scope in enumerate(m.grants):
        b.add("marketplace_grant", (*entity, *_scope(scope)), ("grants", i))


def _budget_plan(b: _Builder, p: models.BudgetPlan) -> None:
    b.add("budget_plan", (p.name,), protect=p.protect, cycle=p.cycle, active=p.active, allow_overflow=p.allow_overflow)
    for i, allocation in enumerate(p.allocations):
        b.add("budget_allocation", (p.name, *_scope(allocation.scope)), ("allocations", i), credits=allocation.credits, overflow_cap=allocation.overflow_cap, source="manual")
    for i, split in enumerate(p.distribute_equally):
        shares = split_equally(to_cents(split.total_credits), split.scopes)
        for j, scope in enumerate(split.scopes):
            b.add("budget_allocation", (p.name, *_scope(scope)), ("distribute_equally", i, "scopes", j), credits=shares[scope] / 100, overflow_cap=split.overflow_cap, source="equal")
    for i, override in enumerate(p.overrides):
        b.add("budget_override", (p.name, *_scope(override.scope)), ("overrides", i), credits=override.credits, reason=override.reason)


EXPANDERS: Mapping[str, Callable[[_Builder, Any], None]] = {
    "Account": _account,
    "Model": _model,
    "Directory": _directory,
    "ModelAccess": _model_access,
    "Features": _features,
    "GuardrailPreset": _preset,
    "Agent": _agent,
    "Connection": _connection,
    "MarketplaceListing": _listing,
    "BudgetPlan": _budget_plan,
}


def desired_state(tenant: Tenant, fingerprint: Fingerprint) -> State:
    """The desired state of a validated tenant. Copilot's org `global` exists in every account."""
    state = State()
    for kind, declared_list in tenant.by_kind.items():
        expand = EXPANDERS[kind]
        for declared in declared_list:
            account = declared.model.name if kind == "Account" else getattr(declared.model, "account", None)
            builder = _Builder(declared, account, fingerprint)
            expand(builder, declared.model)
            for resource in builder.resources:
                state.add(resource)
    for account in tenant.accounts:
        address = ("copilot_org", account, ("global",))
        if address not in state:
            state.add(Resource("copilot_org", account, ("global",), {"description": "Default global organization", "is_default_global": True}, origin="(built in)"))
    return state


