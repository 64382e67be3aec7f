"""One entry per kind: everything the engines need about it, checked when the registry is built.

A `Kind` hangs its pieces off the kind's `Descriptor` (config-language facts and semantic
rules): its resource types (the rows it becomes), its expander (document → resources), its
exporter (resources → documents) and what its resources add to the policy index. The engines
(desired state, export, the policy index, the reader and planner through `resource_types()`)
iterate this registry and never name a kind. Anything missing or mismatched is a
`RegistryError` here, at start-up, not a KeyError in the middle of a plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

from cockpit.config.descriptor import Descriptor, Registry, RegistryError
from cockpit.resources.builder import Builder
from cockpit.resources.documents import AccountResources, Document
from cockpit.resources.index import IndexHandler
from cockpit.resources.rows import ResourceType
from cockpit.resources.state import Resource

Expander = Callable[[Builder, Any], None]
"""(builder, the validated model of one document) → resources, through `builder.add`."""
Exporter = Callable[[AccountResources], Mapping[str, list[Document]]]
"""An account's resources → file path of the exported tree → the documents of this kind in it."""
Serializer = Callable[[Resource], Mapping[str, Any]]
"""A resource as the read API shows it."""


@dataclass(frozen=True)
class Kind:
    descriptor: Descriptor
    types: tuple[ResourceType, ...]
    """Its resource types, parents before children."""
    expand: Expander | None = None
    export: Exporter | None = None
    index: Mapping[str, IndexHandler] = field(default_factory=dict)
    """Resource type → what it adds to the policy index; types the rules never read have none."""
    serialize: Mapping[str, Serializer] | None = None
    """Resource type → its read-API form; None: the read API's generic form."""

    @property
    def name(self) -> str:
        return self.descriptor.kind


class KindRegistry:
    """Every kind of the config language with its pieces, in dependency order."""

    def __init__(self, kinds: list[Kind], language: Registry) -> None:
        by_name: dict[str, Kind] = {}
        for kind in kinds:
            if kind.name in by_name:
                raise RegistryError(f"kind {kind.name!r} is declared twice")
            if language.get(kind.name) is not kind.descriptor:
                raise RegistryError(f"kind {kind.name!r} is not the config language's {kind.name}")
            by_name[kind.name] = kind
        missing = [name for name in language.kinds() if name not in by_name]
        if missing:
            raise RegistryError(f"kinds {missing} of the config language have no declaration")
        ordered = [by_name[name] for name in language.kinds()]
        types: dict[str, ResourceType] = {}
        for kind in ordered:
            _check(kind, types)
            for resource_type in _with_secret_paths(kind):
                types[resource_type.name] = resource_type
        self._kinds = MappingProxyType({kind.name: kind for kind in ordered})
        self._types = tuple(types.values())
        self._by_type = MappingProxyType(types)
        self._kind_types = MappingProxyType(
            {k.name: MappingProxyType({t.name: types[t.name] for t in k.types}) for k in ordered}
        )
        self._index = {name: handler for kind in ordered for name, handler in kind.index.items()}
        """A plain dict, not a proxy: the policy index looks a type up once per resource."""

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._kinds.values())

    def __len__(self) -> int:
        return len(self._kinds)

    def get(self, name: str) -> Kind | None:
        return self._kinds.get(name)

    def resource_types(self) -> tuple[ResourceType, ...]:
        """Every resource type, parents before children (the create order)."""
        return self._types

    def types_of(self, name: str) -> Mapping[str, ResourceType]:
        """The resource types of one kind, by name."""
        return self._kind_types[name]

    def kind_of(self, type_name: str) -> Kind:
        return self._kinds[self._by_type[type_name].kind]

    def index_handlers(self) -> Mapping[str, IndexHandler]:
        """Resource type → what it adds to the policy index."""
        return self._index

    def check_tables(self, tables: Mapping[str, Any]) -> None:
        """Every resource type's table has its key, field, parent and secret columns. The
        tables are the store's (`metadata.tables`), a layer above, so the store passes them."""
        for resource_type in self._types:
            table = tables.get(resource_type.table)
            if table is None:
                raise RegistryError(f"resource type {resource_type.name!r}: no table {resource_type.table!r}")
            columns = [
                *resource_type.key_columns,
                *resource_type.fields,
                *(parent.column for parent in resource_type.parents),
            ]
            if resource_type.secret:
                columns += [f"{resource_type.secret}_encrypted", f"{resource_type.secret}_fingerprint"]
            missing = [column for column in columns if column not in table.c]
            if missing:
                raise RegistryError(f"resource type {resource_type.name!r}: columns {missing} not in table {table.name}")


def _check(kind: Kind, earlier: Mapping[str, ResourceType]) -> None:
    name = kind.name
    if kind.expand is None:
        raise RegistryError(f"kind {name!r} has no expander")
    if kind.export is None:
        raise RegistryError(f"kind {name!r} has no exporter")
    if not kind.types:
        raise RegistryError(f"kind {name!r} has no resource types")
    own: set[str] = set()
    for resource_type in kind.types:
        if resource_type.kind != name:
            raise RegistryError(
                f"resource type {resource_type.name!r} says kind {resource_type.kind!r} "
                f"but is declared by {name!r}"
            )
        if resource_type.name in earlier or resource_type.name in own:
            raise RegistryError(f"resource type {resource_type.name!r} is declared twice")
        for parent in resource_type.parents:
            if parent.type not in earlier and parent.type not in own:
                raise RegistryError(
                    f"resource type {resource_type.name!r}: parent {parent.type!r} must be "
                    "declared first (by this kind or one it depends on)"
                )
        own.add(resource_type.name)
    for type_name in (*kind.index, *(kind.serialize or {})):
        if type_name not in own:
            raise RegistryError(f"kind {name!r} indexes or serializes unknown type {type_name!r}")


def _with_secret_paths(kind: Kind) -> list[ResourceType]:
    """The kind's types with their secret patterns derived from the descriptor's: a pattern
    under a document path a field copies becomes the same pattern under that field. Every
    secret of the kind must land in a type that has a secret group, and every such type must
    get one."""
    patterns = kind.descriptor.secret_fields
    covered: set[str] = set()
    result = []
    for resource_type in kind.types:
        if resource_type.secret is None:
            if resource_type.secret_source:
                raise RegistryError(f"resource type {resource_type.name!r} has a secret_source but no secret group")
            result.append(resource_type)
            continue
        paths = []
        for field_name, document_path in resource_type.secret_source.items():
            prefix = document_path + "."
            for pattern in patterns:
                if pattern.startswith(prefix):
                    paths.append(field_name + "." + pattern[len(prefix):])
                    covered.add(pattern)
        if not paths:
            raise RegistryError(
                f"resource type {resource_type.name!r} has a secret group but none of "
                f"{kind.name}'s secret_fields {list(patterns)} falls under its secret_source"
            )
        result.append(replace(resource_type, secret_paths=tuple(paths)))
    uncovered = [p for p in patterns if p not in covered]
    if uncovered:
        raise RegistryError(f"secret fields {uncovered} of {kind.name!r} reach no resource type's secret")
    return result
