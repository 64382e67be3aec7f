"""State → config documents: what every kind's exporter shares.

An exporter gathers the resources an account's document of its kind became and writes the
document back, omitting fields that hold their default (taken from the kind's pydantic model,
never restated), so that validating and expanding the result gives the same resources again.
Scopes go back to their names (`team:research/ml`), secrets stay the references they were
stored as.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from pydantic import BaseModel

from cockpit.config.models import API_VERSION
from cockpit.config.scopes import Scope
from cockpit.resources.state import Key, Resource, State

Document = dict[str, Any]

_SCOPE_ORDER = {"account": 0, "pool": 1, "org": 2, "team": 3, "user": 4, "agent": 5}


class AccountResources:
    """One account's resources by type, each list in key order, with children by parent key."""

    def __init__(self, state: State, account: str) -> None:
        self.account = account
        self._by_type: dict[str, list[Resource]] = defaultdict(list)
        for resource in state:
            if resource.account == account:
                self._by_type[resource.type].append(resource)
            elif resource.account is None:  # the global catalog: models and their deployments
                self._by_type[resource.type].append(resource)
        for resources in self._by_type.values():
            resources.sort(key=lambda r: r.key)
        self._children: dict[tuple[str, int], dict[Key, list[Resource]]] = {}

    def of(self, type_name: str) -> list[Resource]:
        return self._by_type.get(type_name, [])

    def children(self, type_name: str, parent_key: Key) -> list[Resource]:
        """Resources of `type_name` whose key starts with `parent_key` (grouped once per type)."""
        width = len(parent_key)
        grouped = self._children.get((type_name, width))
        if grouped is None:
            grouped = defaultdict(list)
            for resource in self.of(type_name):
                grouped[resource.key[:width]].append(resource)
            self._children[(type_name, width)] = grouped
        return grouped.get(parent_key, [])

    def types(self) -> set[str]:
        return {t for t, resources in self._by_type.items() if resources}


@cache
def defaults(model: type[BaseModel]) -> Mapping[str, Any]:
    """The default of every optional field of a config model (required fields have none)."""
    return MappingProxyType(
        {
            name: info.get_default(call_default_factory=True)
            for name, info in model.model_fields.items()
            if not info.is_required()
        }
    )


def header(kind: str, account: str | None = None) -> Document:
    document: Document = {"apiVersion": API_VERSION, "kind": kind}
    if account is not None:
        document["account"] = account
    return document


def put_value(document: Document, name: str, value: Any, default: Any = None) -> None:
    """Set `name` unless it holds `default` (booleans never equal numbers here)."""
    if value == default and isinstance(value, bool) == isinstance(default, bool):
        return
    document[name] = value


def put(document: Document, model: type[BaseModel], name: str, value: Any) -> None:
    """Set field `name` of `model` unless it holds the model's default for it."""
    put_value(document, name, value, defaults(model).get(name))


def put_section(document: Document, name: str, section: Mapping[str, Any] | list) -> None:
    """Set a nested object or list unless nothing is left in it."""
    if section:
        document[name] = section


def protect(document: Document, resource: Resource) -> None:
    if resource.protect:
        document["protect"] = True


def number(value: float | int | None) -> float | int | None:
    """Credits and prices as people write them: 600, not 600.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def scope_text(scope_type: str, scope_key: str) -> str:
    return str(Scope(scope_type, scope_key))


def scope_sort(scope_type: str, scope_key: str) -> tuple[int, str]:
    return (_SCOPE_ORDER.get(scope_type, 9), scope_key)


def scopes(resources: Iterable[Resource]) -> list[str]:
    """The scopes of grant-like resources whose key ends in (scope_type, scope_key)."""
    keys = sorted(((r.key[-2], r.key[-1]) for r in resources), key=lambda k: scope_sort(*k))
    return [scope_text(*k) for k in keys]


def without_defaults(mapping: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """The fields of a nested object (stored as JSON) that are neither None nor the default."""
    result: dict[str, Any] = {}
    for name, value in mapping.items():
        if value is None:
            continue
        put(result, model, name, value)
    return result


def in_model_order(mapping: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Known keys in the model's order (JSONB reorders them), then any others."""
    first = {name: mapping[name] for name in model.model_fields if name in mapping}
    return {**first, **{k: v for k, v in mapping.items() if k not in first}}
