"""The normalized state graph: what both the config (desired) and the database (actual) become.

A `Resource` is one row-sized thing the plan can create, update or delete: an account, a user,
one model grant, one budget allocation. Its identity is (type, account, key) in natural keys;
its `fields` are plain JSON values compared field by field. Secrets appear only as a keyed
fingerprint, never as a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

Key = tuple[str, ...]
Address = tuple[str, str | None, Key]
"""(resource type, account name or None for global resources, natural key)."""


@dataclass(slots=True)
class Resource:
    """Treated as immutable; not `frozen`, because frozen dataclasses set every field through
    `object.__setattr__`, which doubles the cost of reading 100,000 rows."""

    type: str
    account: str | None
    key: Key
    fields: Mapping[str, Any]
    secret_fingerprint: str | None = None
    """HMAC of the resolved secret values (None: the resource has no secret)."""
    protect: bool = False
    origin: object | None = None
    """Where the config declares it (str() gives `file:line:column`, located only when shown);
    read from the database, where the last apply recorded it (relative to the tenant repo),
    None if none did."""
    secret_base: str | None = None
    """Directory that `${file:…}` references of this resource are relative to."""

    @property
    def address(self) -> Address:
        return (self.type, self.account, self.key)


@dataclass
class State:
    """A set of resources, addressable and iterable in a stable order."""

    resources: dict[Address, Resource] = field(default_factory=dict)

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> "State":
        state = cls()
        for resource in resources:
            state.add(resource)
        return state

    def add(self, resource: Resource) -> None:
        self.resources[resource.address] = resource

    def get(self, address: Address) -> Resource | None:
        return self.resources.get(address)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources.values())

    def __len__(self) -> int:
        return len(self.resources)

    def __contains__(self, address: object) -> bool:
        return address in self.resources

    def of_type(self, type_name: str, account: str | None = None) -> Iterator[Resource]:
        for resource in self.resources.values():
            if resource.type == type_name and (account is None or resource.account == account):
                yield resource

    def accounts(self) -> set[str]:
        return {r.key[0] for r in self.resources.values() if r.type == "account"}

    def for_account(self, account: str) -> "State":
        return State.of(r for r in self if r.account == account)
