"""RateLimits: requests and tokens per minute that a scope of one domain may use."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import RATE_LIMITS
from cockpit.config.scopes import Scope
from cockpit.resources.builder import Builder, scope_key
from cockpit.resources.documents import (
    AccountResources,
    Document,
    header,
    put,
    scope_sort,
    scope_text,
)
from cockpit.resources.index import AccountGraph
from cockpit.resources.kind import Kind
from cockpit.resources.rows import SCOPE, ResourceType
from cockpit.resources.state import Resource

PER_USER = "user"
"""The `per` key column of a limit that counts each user of its scope separately."""

TYPES = (
    ResourceType(
        "rate_limit",
        kind="RateLimits",
        table="rate_limits",
        key_columns=("domain", *SCOPE, "model_name", "per"),
        fields=("rpm", "tpm"),
        label="rate limit",
    ),
)


def expand(b: Builder, d: models.RateLimits) -> None:
    for i, limit in enumerate(d.limits):
        key = (d.domain, *scope_key(limit.scope), limit.model or "", PER_USER if limit.per_user else "")
        b.add("rate_limit", key, ("limits", i), rpm=limit.rpm, tpm=limit.tpm)


def limit_sort(resource: Resource) -> tuple:
    domain, scope_type, key, model, per = resource.key
    return (domain, scope_sort(scope_type, key), model, per)


def export(res: AccountResources) -> dict[str, list[Document]]:
    documents = (rate_limits_document(res, d) for d in ("copilot", "console"))
    return {"access/rate_limits.yaml": [d for d in documents if d is not None]}


def rate_limits_document(res: AccountResources, domain: str) -> Document | None:
    limits = []
    for limit in sorted((r for r in res.of("rate_limit") if r.key[0] == domain), key=limit_sort):
        _, scope_type, key, model, per = limit.key
        entry: Document = {"scope": scope_text(scope_type, key)}
        put(entry, models.RateLimit, "per_user", per == PER_USER)
        put(entry, models.RateLimit, "model", model or None)
        put(entry, models.RateLimit, "rpm", limit.fields["rpm"])
        put(entry, models.RateLimit, "tpm", limit.fields["tpm"])
        limits.append(entry)
    if not limits:
        return None
    document = header("RateLimits", res.account)
    document["domain"] = domain
    document["limits"] = limits
    return document


def _index_limit(g: AccountGraph, r: Resource) -> None:
    domain, scope_type, key = r.key[0], r.key[1], r.key[2]
    if domain in g.rate_limits:
        g.rate_limits[domain].setdefault(Scope(scope_type, key), []).append(r)


KIND = Kind(RATE_LIMITS, TYPES, expand=expand, export=export, index={"rate_limit": _index_limit})
