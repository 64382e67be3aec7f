"""Resource types: the row-sized units a plan creates, updates and deletes, and their tables.

Each kind of the config expands into one or more resource types (an `Agent` document into an
agent, its guardrails and its grants), declared with the kind in `cockpit.resources.kinds`. The
reader, the planner and the executor are generic over this table of types; nothing in them names
a kind.
"""

from __future__ import annotations

from functools import cache
from typing import Mapping

from cockpit.resources.kinds import kind_registry
from cockpit.resources.rows import AUDIT_DOMAINS, SCOPE, ParentRef, ResourceType

__all__ = [
    "AUDIT_DOMAINS", "SCOPE", "ParentRef", "ResourceType", "audit_domain", "key_width",
    "own_key", "parent_keys", "resource_types", "types_by_name",
]


def resource_types() -> tuple[ResourceType, ...]:
    """Every resource type, parents before children (the create order)."""
    return kind_registry().resource_types()


@cache
def types_by_name() -> Mapping[str, ResourceType]:
    return {t.name: t for t in resource_types()}


def key_width(type_name: str) -> int:
    """How many parts the natural key of a type has (its parents' keys, then its own)."""
    resource_type = types_by_name()[type_name]
    return sum(key_width(p.type) for p in resource_type.parents) + len(resource_type.key_columns)


def parent_keys(resource_type: ResourceType, key: tuple[str, ...]) -> list[tuple[ParentRef, tuple[str, ...]]]:
    """Split a key into the parents' keys, in the order of `parents`."""
    parts, start = [], 0
    for parent in resource_type.parents:
        width = key_width(parent.type)
        parts.append((parent, key[start : start + width]))
        start += width
    return parts


def own_key(resource_type: ResourceType, key: tuple[str, ...]) -> dict[str, str]:
    """The own key columns of a key, by column name."""
    own = key[len(key) - len(resource_type.key_columns):] if resource_type.key_columns else ()
    return dict(zip(resource_type.key_columns, own))


def audit_domain(resource_type: ResourceType, key: tuple[str, ...]) -> str:
    if resource_type.audit_domain:
        return resource_type.audit_domain
    return own_key(resource_type, key).get("domain", "iam")
