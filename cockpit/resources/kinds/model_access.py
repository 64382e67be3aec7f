"""ModelAccess: which models a scope of one domain may use."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import MODEL_ACCESS
from cockpit.resources.builder import Builder, scope_key
from cockpit.resources.documents import AccountResources, Document, header, put, scope_sort, scope_text
from cockpit.resources.index import AccountGraph
from cockpit.resources.kind import Kind
from cockpit.resources.rows import SCOPE, ResourceType
from cockpit.resources.state import Resource

TYPES = (
    ResourceType("model_grant", kind="ModelAccess", table="model_grants", key_columns=("domain", "model_name", *SCOPE), fields=("access",), label="model grant"),
)


def expand(b: Builder, d: models.ModelAccess) -> None:
    for i, grant in enumerate(d.grants):
        b.add("model_grant", (d.domain, grant.model, *scope_key(grant.scope)), ("grants", i), access=grant.access)


def grant_sort(resource: Resource) -> tuple:
    """(domain, name, scope): model grants and entitlements by model/feature, then scope."""
    domain, name, scope_type, scope_key = resource.key
    return (domain, name, scope_sort(scope_type, scope_key))


def export(res: AccountResources) -> dict[str, list[Document]]:
    documents = (model_access_document(res, d) for d in ("copilot", "console"))
    return {"access/models.yaml": [d for d in documents if d is not None]}


def model_access_document(res: AccountResources, domain: str) -> Document | None:
    grants = []
    for grant in sorted((g for g in res.of("model_grant") if g.key[0] == domain), key=grant_sort):
        entry = {"model": grant.key[1], "scope": scope_text(*grant.key[2:])}
        put(entry, models.ModelGrant, "access", grant.fields["access"])
        grants.append(entry)
    if not grants:
        return None
    document = header("ModelAccess", res.account)
    document["domain"] = domain
    document["grants"] = grants
    return document


def _index_grant(g: AccountGraph, r: Resource) -> None:
    # The scope is kept as the plain (type, key) slice of the key: equal to, and hashing like,
    # the `Scope` that looks it up, without building one per grant (most of a big state).
    key = r.key
    by_scope = g.model_grants.get(key[0])
    if by_scope is not None:
        by_scope[key[2:4]][key[1]] = r


KIND = Kind(MODEL_ACCESS, TYPES, expand=expand, export=export, index={"model_grant": _index_grant})
