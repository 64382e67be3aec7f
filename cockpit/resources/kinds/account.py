"""Account: the tenant itself, its admins and its SSO settings."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import ACCOUNT
from cockpit.resources.builder import Builder
from cockpit.resources.documents import (
    AccountResources,
    Document,
    header,
    in_model_order,
    number,
    protect,
    put,
    put_section,
    without_defaults,
)
from cockpit.resources.index import AccountGraph
from cockpit.resources.kind import Kind
from cockpit.resources.rows import ResourceType
from cockpit.resources.state import Resource

TYPES = (
    ResourceType(
        "account",
        kind="Account",
        table="accounts",
        key_columns=("name",),
        fields=(
            "alias", "description", "email_domain", "status", "monthly_credits",
            "overflow_limit", "credit_factor", "feature_pack", "model_policy", "zitadel",
        ),
        account_scoped=False,
        protectable=True,
        scales={"monthly_credits": 2, "overflow_limit": 2, "credit_factor": 4},
        audit_domain="iam",
    ),
    ResourceType("account_admin", kind="Account", table="account_admins", key_columns=("email",), fields=("role",), audit_domain="iam", label="account admin"),
    ResourceType(
        "account_sso",
        kind="Account",
        table="account_sso",
        fields=("provider", "enabled", "settings"),
        secret="secret_settings",
        secret_source={"settings": "sso.settings"},
        audit_domain="iam",
        label="account SSO",
    ),
)


def expand(b: Builder, a: models.Account) -> None:
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


def export(res: AccountResources) -> dict[str, list[Document]]:
    return {"account.yaml": [account_document(res)]}


def account_document(res: AccountResources) -> Document:
    account = next(r for r in res.of("account") if r.key == (res.account,))
    fields = account.fields
    document = header("Account")
    document["name"] = res.account
    protect(document, account)
    for name in ("alias", "description", "email_domain", "status"):
        put(document, models.Account, name, fields[name])
    admins = []
    for admin in res.of("account_admin"):
        entry = {"email": admin.key[0]}
        put(entry, models.Admin, "role", admin.fields["role"])
        admins.append(entry)
    put(document, models.Account, "admins", admins)
    for sso in res.of("account_sso"):
        document["sso"] = without_defaults(sso.fields, models.Sso)
    allocation = without_defaults(
        {name: number(fields[name]) for name in models.AccountAllocation.model_fields},
        models.AccountAllocation,
    )
    put_section(document, "allocation", allocation)
    pack = fields["feature_pack"] or {}
    put_section(document, "feature_pack", without_defaults(in_model_order(pack, models.FeaturePack), models.FeaturePack))
    policy = {}
    for domain in models.ModelPolicy.model_fields:
        ceiling = without_defaults((fields["model_policy"] or {}).get(domain) or {}, models.DomainModelPolicy)
        put_section(policy, domain, in_model_order(ceiling, models.DomainModelPolicy))
    put_section(document, "model_policy", policy)
    zitadel = fields["zitadel"] or {}
    if zitadel:  # {} means no zitadel section; `zitadel: {}` would store its defaults
        document["zitadel"] = without_defaults(in_model_order(zitadel, models.ZitadelSettings), models.ZitadelSettings)
    return document


def _index_account(g: AccountGraph, r: Resource) -> None:
    g.account = r


KIND = Kind(ACCOUNT, TYPES, expand=expand, export=export, index={"account": _index_account})
