"""What a kind's expander writes to: the resources of one document, with origin and secret.

Emails are lower-cased and scopes split into (type, key) by the expanders; the builder rounds
numbers to what their columns store, fingerprints secrets and remembers the file and line that
declared each resource. It accepts only the resource types of the document's kind.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from cockpit.config.descriptor import Descriptor, RegistryError
from cockpit.config.scopes import parse_scope
from cockpit.config.secrets import secret_fields
from cockpit.config.tenant import Declared
from cockpit.resources.rows import ResourceType
from cockpit.resources.state import Resource

Fingerprint = Callable[[ResourceType, dict[str, str], str, Mapping[str, str]], str | None]
"""(type, secret references, base directory, where each reference is written) → HMAC
fingerprint of the resolved values."""


class Builder:
    """Collects the resources of one document of one kind."""

    def __init__(
        self,
        declared: Declared,
        account: str | None,
        fingerprint: Fingerprint,
        descriptor: Descriptor,
        types: Mapping[str, ResourceType],
    ) -> None:
        self.declared = declared
        self.account = account
        self.fingerprint = fingerprint
        self.descriptor = descriptor
        self.types = types
        self.resources: list[Resource] = []
        self.base = str(declared.source.path.parent.resolve())

    def add(self, type_name: str, key: tuple[str, ...], path: tuple = (), protect: bool = False, **fields: Any) -> None:
        resource_type = self.types.get(type_name)
        if resource_type is None:
            raise RegistryError(
                f"the expander of {self.descriptor.kind} made a {type_name!r}, "
                f"which is not one of its resource types ({', '.join(self.types)})"
            )
        for name, places in resource_type.scales.items():
            if fields.get(name) is not None:
                fields[name] = round(float(fields[name]), places)
        origin = self.declared.ref(*path)
        fingerprint = None
        if resource_type.secret is not None:
            refs = resource_type.secret_refs(fields)
            fingerprint = self.fingerprint(resource_type, refs, self.base, self._ref_origins(refs, str(origin), tuple(path))) if refs else None
        self.resources.append(
            Resource(
                type_name,
                self.account,
                tuple(key),
                fields,
                secret_fingerprint=fingerprint,
                protect=protect,
                origin=origin,
                secret_base=self.base if resource_type.secret else None,
            )
        )

    def _ref_origins(self, refs: Mapping[str, str], default: str, within: tuple = ()) -> dict[str, str]:
        """`file:line` of each secret reference of the resource, by field name: those under
        the resource's own path first (a model's deployments each have an `api_key`)."""
        found: dict = {}
        for path, _ in secret_fields(self.descriptor, self.declared.source.data):
            if path[: len(within)] == within or path[-1] not in found:
                found[path[-1]] = path
        origins = {}
        for name in refs:
            if name in found:
                location = self.declared.at(*found[name])
                origins[name] = str(location)
            else:
                origins[name] = default
        return origins


def scope_key(text: str) -> tuple[str, str]:
    """A scope as the last two parts of a key: (type, key)."""
    scope = parse_scope(text)
    return scope.type, scope.key
