"""Features: which features of the account's pack a scope of one domain has, with config."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import FEATURES
from cockpit.resources.builder import Builder, scope_key
from cockpit.resources.documents import AccountResources, Document, header, put, scope_text
from cockpit.resources.index import AccountGraph
from cockpit.resources.kind import Kind
from cockpit.resources.kinds.model_access import grant_sort
from cockpit.resources.rows import SCOPE, ResourceType
from cockpit.resources.state import Resource

TYPES = (
    ResourceType("feature_entitlement", kind="Features", table="feature_entitlements", key_columns=("domain", "feature", *SCOPE), fields=("enabled", "config"), label="feature entitlement"),
)


def expand(b: Builder, d: models.Features) -> None:
    for i, e in enumerate(d.entitlements):
        b.add("feature_entitlement", (d.domain, e.feature, *scope_key(e.scope)), ("entitlements", i), enabled=e.enabled, config=e.config)


def export(res: AccountResources) -> dict[str, list[Document]]:
    documents = (features_document(res, d) for d in ("copilot", "console"))
    return {"access/features.yaml": [d for d in documents if d is not None]}


def features_document(res: AccountResources, domain: str) -> Document | None:
    entitlements = []
    for item in sorted((e for e in res.of("feature_entitlement") if e.key[0] == domain), key=grant_sort):
        entry = {"feature": item.key[1], "scope": scope_text(*item.key[2:])}
        put(entry, models.Entitlement, "enabled", item.fields["enabled"])
        put(entry, models.Entitlement, "config", item.fields["config"] or {})
        entitlements.append(entry)
    if not entitlements:
        return None
    document = header("Features", res.account)
    document["domain"] = domain
    document["entitlements"] = entitlements
    return document


def _index_entitlement(g: AccountGraph, r: Resource) -> None:
    domain, feature = r.key[0], r.key[1]
    if domain in g.entitlements:
        g.entitlements[domain][r.key[2:4]][feature] = r


KIND = Kind(FEATURES, TYPES, expand=expand, export=export, index={"feature_entitlement": _index_entitlement})
