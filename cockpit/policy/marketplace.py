"""Marketplace discover: the published listings a user can see.

A listing with no grants is visible to the whole account; otherwise a grant must name the
user, one of their teams or one of their orgs (membership expanded from the copilot
directory).
"""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.policy.grants import GrantResolver, reaching_grants
from cockpit.policy.graph import ACCOUNT, AccountGraph
from cockpit.policy.provenance import Source, explain, source_of
from cockpit.resources.state import Resource


@dataclass(frozen=True)
class Discovery:
    listing: str
    """`entity_type:entity_name`, e.g. `agent:helpdesk`."""
    title: str | None
    mode: str
    """`account`: no grants, visible to everyone; `granted`: through `matched`."""
    matched: tuple[str, ...]
    sources: tuple[Source, ...]
    why: str
    resource: Resource | None = None


def is_published(listing: Resource) -> bool:
    return listing.fields.get("published") is not False


def discover(graph: AccountGraph, user: str) -> tuple[Discovery, ...]:
    """The listings `user` can discover, sorted by listing."""
    scopes = graph.directory("copilot").member_scopes(user)
    reaching = reaching_grants(graph.listing_grants, scopes)
    found = []
    for name, listing in sorted(graph.listings.items()):
        if not is_published(listing):
            continue
        title = listing.fields.get("title")
        if name not in graph.granted_listings:
            source = source_of(listing, str(ACCOUNT), "published, no grants")
            found.append(Discovery(name, title, "account", (), (source,), "published with no grants: visible to the whole account", listing))
        elif name in reaching:
            pairs = reaching[name]
            sources = tuple(source_of(g, str(s)) for s, g in pairs)
            found.append(Discovery(name, title, "granted", tuple(str(s) for s, _ in pairs), sources, f"granted by {explain(sources)}", listing))
    return tuple(found)


def listing_resolver(graph: AccountGraph) -> GrantResolver:
    def granted_and_published(name: str) -> bool:
        listing = graph.listings.get(name)
        return listing is not None and is_published(listing)

    return GrantResolver(graph.directory("copilot"), graph.listing_grants, granted_and_published, graph.open_listings)


def discoverable(graph: AccountGraph, user: str) -> frozenset[str]:
    """The listings `user` can discover: the fast path, without explanations."""
    return listing_resolver(graph).names(user)
