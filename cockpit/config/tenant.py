"""Schema-valid documents gathered by kind and key: what the semantic pass and the planner read.

Documents of a mergeable kind (a directory split over several files) are kept as parts under one
key; any other duplicate key is an error that names where the first one was declared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Generic, Iterator, Sequence, TypeVar

from pydantic import BaseModel

from cockpit.config import models
from cockpit.config.diagnostics import Diagnostics, Location
from cockpit.config.source import NodeRef, PathElement, SourceDocument
from cockpit.config.descriptor import Registry
from cockpit.config.scopes import Scope

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Declared(Generic[M]):
    """A parsed document and the source it came from."""

    model: M
    source: SourceDocument

    def at(self, *path: PathElement, key: bool = False) -> Location:
        return self.source.locate(path, key=key)

    def ref(self, *path: PathElement) -> NodeRef:
        """A lazily located node: for remembering where something was first seen."""
        return NodeRef(self.source, path)


@dataclass
class DirectoryIndex:
    """One domain's directory of one account, merged from all its documents."""

    account: str
    domain: str
    users: dict[str, NodeRef] = field(default_factory=dict)
    orgs: dict[str, NodeRef | None] = field(default_factory=dict)
    """`None` for copilot's built-in org "global" when no document declares it."""
    teams: dict[str, NodeRef] = field(default_factory=dict)
    """Keyed `org/team`."""
    team_members: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    user_teams: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def knows(self, scope: Scope) -> bool:
        table = {"user": self.users, "org": self.orgs, "team": self.teams}.get(scope.type)
        return table is None or scope.key in table

    def names(self, scope_type: str) -> list[str]:
        return list({"user": self.users, "org": self.orgs, "team": self.teams}[scope_type])


class Tenant:
    """Every declared document, by kind, with indexes the rules need."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[Declared[Any]]] = defaultdict(list)
        self.directories: dict[tuple[str, str], DirectoryIndex] = {}
        self.broken: set[tuple[str, tuple[Any, ...]]] = set()
        """(kind, natural key) of documents that failed the schema pass: their names exist,
        so references to them are not reported a second time."""
        self.unparsed: list[tuple[Location, str]] = []
        """(where the problem is, file) of each file that does not parse: any name may be
        declared there, so a name that does not resolve is counted, not reported."""
        self.unchecked = 0
        """References not checked because of `unparsed`."""

    def is_broken(self, kind: str, *key: Any) -> bool:
        return (kind, key) in self.broken

    def of(self, kind: str) -> list[Declared[Any]]:
        return self.by_kind.get(kind, [])

    @property
    def accounts(self) -> dict[str, Declared[models.Account]]:
        return {d.model.name: d for d in self.of("Account")}

    @property
    def catalog(self) -> dict[str, Declared[models.Model]]:
        return {d.model.name: d for d in self.of("Model")}

    def directory(self, account: str, domain: str) -> DirectoryIndex:
        found = self.directories.get((account, domain))
        if found is None:
            found = self.directories[(account, domain)] = DirectoryIndex(account, domain)
            if domain == "copilot":  # copilot always has org "global", declared or not
                found.orgs["global"] = None
        return found

    def account_documents(self, account: str) -> Iterator[Declared[Any]]:
        for kind, declared in self.by_kind.items():
            for item in declared:
                if getattr(item.model, "account", None) == account:
                    yield item


def gather(
    documents: Sequence[tuple[SourceDocument, BaseModel]],
    registry: Registry,
    diagnostics: Diagnostics,
    broken: Sequence[SourceDocument] = (),
    unparsed: Sequence[tuple[Location, str]] = (),
) -> Tenant:
    """Group parsed documents by kind and key; report duplicate keys across files."""
    tenant = Tenant()
    tenant.unparsed = list(unparsed)
    for source in broken:
        descriptor = registry.get(source.data.get("kind"))
        key = descriptor.key_of(source.data) if descriptor is not None else ()
        if descriptor is not None and all(isinstance(part, str) for part in key):
            tenant.broken.add((descriptor.kind, key))
    first_by_key: dict[tuple[str, tuple[Any, ...]], Declared[Any]] = {}
    for source, model in documents:
        descriptor = registry.get(model.kind)  # type: ignore[attr-defined]
        assert descriptor is not None
        declared = Declared(model, source)
        key = (descriptor.kind, descriptor.key_of(source.data))
        first = first_by_key.get(key)
        if first is not None and not descriptor.mergeable:
            shown = "/".join(str(k) for k in key[1])
            diagnostics.error(
                declared.at(descriptor.key_fields[-1]),
                f"duplicate {descriptor.kind} '{shown}' (first declared at {first.at()}); "
                "natural keys must be unique across files",
            )
            continue
        first_by_key.setdefault(key, declared)
        tenant.by_kind[descriptor.kind].append(declared)
    for declared in tenant.of("Directory"):
        _index_directory(tenant, declared, diagnostics)
    return tenant


def _index_directory(
    tenant: Tenant, declared: Declared[models.Directory], diagnostics: Diagnostics
) -> None:
    directory = declared.model
    index = tenant.directory(directory.account, directory.domain)
    where = f"the {directory.domain} directory of '{directory.account}'"
    for i, user in enumerate(directory.users):
        email = user.email.lower()
        if email in index.users:
            diagnostics.error(
                declared.at("users", i, "email"),
                f"user '{email}' is listed twice in {where} (first at {index.users[email]})",
            )
            continue
        index.users[email] = declared.ref("users", i)
    for i, org in enumerate(directory.orgs):
        if index.orgs.get(org.name) is not None:
            diagnostics.error(
                declared.at("orgs", i, "name"),
                f"org '{org.name}' is declared twice in {where} (first at {index.orgs[org.name]})",
            )
            continue
        index.orgs[org.name] = declared.ref("orgs", i)
        for j, team in enumerate(org.teams):
            key = f"{org.name}/{team.name}"
            if key in index.teams:
                diagnostics.error(
                    declared.at("orgs", i, "teams", j, "name"),
                    f"team '{team.name}' is declared twice in org '{org.name}'",
                )
                continue
            index.teams[key] = declared.ref("orgs", i, "teams", j)
            for member in team.members:
                index.team_members[key].add(member.user.lower())
                index.user_teams[member.user.lower()].add(key)
