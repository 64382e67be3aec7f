"""MarketplaceListing: an agent or connection offered in the marketplace, and to whom."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import MARKETPLACE_LISTING
from cockpit.resources.builder import Builder, scope_key
from cockpit.resources.documents import AccountResources, Document, header, protect, put, scopes
from cockpit.resources.index import AccountGraph, scope_at
from cockpit.resources.kind import Kind
from cockpit.resources.rows import SCOPE, ParentRef, ResourceType
from cockpit.resources.state import Resource

_LISTING_FIELDS = ("title", "description", "published", "featured", "verified", "pricing_model", "version", "author")

TYPES = (
    ResourceType(
        "marketplace_listing",
        kind="MarketplaceListing",
        table="marketplace_listings",
        key_columns=("entity_type", "entity_name"),
        fields=_LISTING_FIELDS,
        protectable=True,
        audit_domain="copilot",
        label="marketplace listing",
    ),
    ResourceType("marketplace_grant", kind="MarketplaceListing", table="marketplace_grants", key_columns=SCOPE, parents=(ParentRef("listing_id", "marketplace_listing"),), audit_domain="copilot", label="marketplace grant"),
)


def expand(b: Builder, m: models.MarketplaceListing) -> None:
    entity = tuple(m.entity.split(":", 1))
    b.add("marketplace_listing", entity, protect=m.protect, **{name: getattr(m, name) for name in _LISTING_FIELDS})
    for i, scope in enumerate(m.grants):
        b.add("marketplace_grant", (*entity, *scope_key(scope)), ("grants", i))


def export(res: AccountResources) -> dict[str, list[Document]]:
    return {"marketplace.yaml": listing_documents(res)}


def listing_documents(res: AccountResources) -> list[Document]:
    documents = []
    for listing in res.of("marketplace_listing"):
        document = header("MarketplaceListing", res.account)
        document["entity"] = ":".join(listing.key)
        protect(document, listing)
        document["title"] = listing.fields["title"]
        for name in _LISTING_FIELDS[1:]:
            put(document, models.MarketplaceListing, name, listing.fields[name])
        put(document, models.MarketplaceListing, "grants", scopes(res.children("marketplace_grant", listing.key)))
        documents.append(document)
    return documents


def _index_listing(g: AccountGraph, r: Resource) -> None:
    g.listings[f"{r.key[0]}:{r.key[1]}"] = r


def _index_grant(g: AccountGraph, r: Resource) -> None:
    listing = f"{r.key[0]}:{r.key[1]}"
    g.listing_grants[scope_at(r, 2)][listing] = r
    g.granted_listings.add(listing)


KIND = Kind(
    MARKETPLACE_LISTING,
    TYPES,
    expand=expand,
    export=export,
    index={"marketplace_listing": _index_listing, "marketplace_grant": _index_grant},
)
