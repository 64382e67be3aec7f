"""Kinds and what the engine needs to know about each, in one immutable registry.

Validate, plan, apply, export and the read API ask the registry about kinds; they never import a
kind's module directly. A new kind is one more `Descriptor` in `build_registry()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Iterator, Mapping

from pydantic import BaseModel

from cockpit.config import models


class RegistryError(Exception):
    """The registry itself is inconsistent: a programming error, raised at start-up."""


@dataclass(frozen=True)
class Descriptor:
    """What the engine knows about one kind."""

    kind: str
    model: type[BaseModel]
    key_fields: tuple[str, ...]
    """Fields of a document that form its natural key, e.g. ("account", "name")."""
    depends_on: tuple[str, ...] = ()
    """Kinds whose resources must exist first (create order; reversed on delete)."""
    mergeable: bool = False
    """Documents with the same key merge their lists (a directory split over several files)."""
    secret_fields: tuple[str, ...] = ()
    """Dotted paths of secret values; `*` matches any key. Never shown, never echoed."""

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


@cache
def build_registry() -> Registry:
    """The kinds of `cockpit/v1`, listed in one place."""
    return Registry(
        [
            Descriptor(
                "Account",
                models.Account,
                ("name",),
                secret_fields=("sso.settings.*secret*",),
            ),
            Descriptor("Model", models.Model, ("name",), secret_fields=("litellm.api_key",)),
            Descriptor(
                "Directory", models.Directory, ("account", "domain"), ("Account",), mergeable=True
            ),
            Descriptor(
                "ModelAccess",
                models.ModelAccess,
                ("account", "domain"),
                ("Account", "Model", "Directory"),
                mergeable=True,
            ),
            Descriptor(
                "Features",
                models.Features,
                ("account", "domain"),
                ("Account", "Directory"),
                mergeable=True,
            ),
            Descriptor(
                "GuardrailPreset", models.GuardrailPreset, ("account", "code"), ("Directory",)
            ),
            Descriptor(
                "Agent", models.Agent, ("account", "name"), ("Directory", "GuardrailPreset")
            ),
            Descriptor(
                "Connection",
                models.Connection,
                ("account", "name"),
                ("Directory",),
                secret_fields=("secret.*",),
            ),
            Descriptor(
                "MarketplaceListing",
                models.MarketplaceListing,
                ("account", "entity"),
                ("Agent", "Connection"),
            ),
            Descriptor("BudgetPlan", models.BudgetPlan, ("account", "name"), ("Directory",)),
        ]
    )
