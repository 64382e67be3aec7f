"""Small typed records for what Cockpit reads from Zitadel (v1 management API shapes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProjectRole:
    """A project role; only `key` matters for authorization, the rest is display."""

    key: str
    display_name: str
    group: str = ""

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> ProjectRole:
        return cls(
            key=str(item.get("key", "")),
            display_name=str(item.get("displayName", "")),
            group=str(item.get("group", "")),
        )


@dataclass(frozen=True)
class UserGrant:
    """A user grant (user ↔ project ↔ role keys) issued by organization `org_id`."""

    id: str
    user_id: str
    project_id: str
    role_keys: tuple[str, ...]
    state: str = ""
    org_id: str = ""
    user_name: str = ""
    email: str = ""

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> UserGrant:
        details = item.get("details") or {}
        return cls(
            id=str(item.get("id", "")),
            user_id=str(item.get("userId", "")),
            project_id=str(item.get("projectId", "")),
            role_keys=tuple(sorted(str(key) for key in item.get("roleKeys") or [])),
            state=str(item.get("state", "")),  # omitted on the wire when unspecified
            org_id=str(item.get("orgId") or details.get("resourceOwner") or ""),
            user_name=str(item.get("userName", "")),
            email=str(item.get("email", "")),
        )


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    state: str = ""
    org_id: str = ""

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> Project:
        details = item.get("details") or {}
        return cls(
            id=str(item.get("id", "")),
            name=str(item.get("name", "")),
            state=str(item.get("state", "")),
            org_id=str(details.get("resourceOwner", "")),
        )


@dataclass(frozen=True)
class StatusReport:
    """What `cockpit status` says about Zitadel for one project; never raises, never a secret."""

    base_url: str
    project_id: str
    reachable: bool = False
    authenticated: bool = False
    authorized: bool = False
    project_found: bool = False
    project_name: str | None = None
    role_count: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.project_found and self.role_count is not None and self.error is None
