"""What the config language knows about one kind, and the immutable registry of them.

A `Descriptor` holds a kind's facts that validation needs: its model, its natural key, what it
depends on, where its secrets are and its semantic rules. The list of kinds is in
`cockpit.config.registry`; the layers above hang the rest of a kind (resource types, expander,
exporter, policy index) off the same descriptor in `cockpit.resources.kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

from pydantic import BaseModel

if TYPE_CHECKING:
    from cockpit.config.references import Resolver
    from cockpit.config.tenant import Declared, Tenant

Rules = Callable[["list[Declared]", "Tenant", "Resolver"], None]
"""The semantic rules of a kind: (its documents, the tenant, the resolver) → diagnostics, through
the resolver. An account-scoped kind gets only the documents whose account resolves."""


class RegistryError(Exception):
    """The registry itself is inconsistent: a programming error, raised at start-up."""


@dataclass(frozen=True)
class Descriptor:
    """What the config language knows about one kind."""

    kind: str
    model: type[BaseModel]
    key_fields: tuple[str, ...]
    """Fields of a document that form its natural key, e.g. ("account", "name")."""
    depends_on: tuple[str, ...] = ()
    """Kinds whose resources must exist first (create order; reversed on delete)."""
    mergeable: bool = False
    """Documents with the same key merge their lists (a directory split over several files)."""
    secret_fields: tuple[str, ...] = ()
    """Dotted paths of secret values; `*` matches any key. Never shown, never echoed. The one
    statement of where a kind's secrets are: resource types find theirs through these."""
    rules: Rules | None = None
    """Rules across documents (references resolve, keys unique); None: the schema says it all."""

    @property
    def account_scoped(self) -> bool:
        return "account" in self.key_fields

    def key_of(self, document: Mapping[str, object]) -> tuple[object, ...]:
        """The natural key of a raw document (a mapping as loaded from YAML)."""
        return tuple(document.get(field) for field in self.key_fields)


class Registry:
    """An immutable map of kind → descriptor, ordered by dependency."""

    def __init__(self, descriptors: list[Descriptor]) -> None:
        by_kind: dict[str, Descriptor] = {}
        for descriptor in descriptors:
            if descriptor.kind in by_kind:
                raise RegistryError(f"kind {descriptor.kind!r} is registered twice")
            if not descriptor.key_fields:
                raise RegistryError(f"kind {descriptor.kind!r} has no natural key")
            by_kind[descriptor.kind] = descriptor
        for descriptor in descriptors:
            for dependency in descriptor.depends_on:
                if dependency not in by_kind:
                    raise RegistryError(
                        f"kind {descriptor.kind!r} depends on unknown kind {dependency!r}"
                    )
        self._by_kind = MappingProxyType({d.kind: by_kind[d.kind] for d in _ordered(by_kind)})

    def get(self, kind: str) -> Descriptor | None:
        return self._by_kind.get(kind)

    def kinds(self) -> list[str]:
        """Kind names in dependency order: parents first."""
        return list(self._by_kind)

    def __iter__(self) -> Iterator[Descriptor]:
        return iter(self._by_kind.values())

    def __len__(self) -> int:
        return len(self._by_kind)


def _ordered(by_kind: Mapping[str, Descriptor]) -> list[Descriptor]:
    """Topological order, stable in registration order; a cycle is a RegistryError."""
    done: dict[str, Descriptor] = {}
    visiting: set[str] = set()

    def visit(kind: str) -> None:
        if kind in done:
            return
        if kind in visiting:
            raise RegistryError(f"dependency cycle through kind {kind!r}")
        visiting.add(kind)
        for dependency in by_kind[kind].depends_on:
            visit(dependency)
        visiting.discard(kind)
        done[kind] = by_kind[kind]

    for kind in by_kind:
        visit(kind)
    return list(done.values())
