"""Zitadel in the plan: the desired project roles and user grants of each account, compared with
what Zitadel holds.

Pure functions: the desired side comes from a `State`, the actual side is handed in (read by
`cockpit.zitadel.reader`). An account owns only the roles its mappings name (its prefix) and
the grants of its own people; role keys of other accounts on a shared grant are kept as they are.

The platform's super-admin role keys (`cockpit.config.roles.PLATFORM_ROLE_KEYS` and `ZITADEL_SUPER_ADMIN_ROLES`) are
never a tenant's: validation refuses settings that would produce one, and this module
refuses to plan a change that creates, grants, removes or revokes one even when validation was
bypassed (a hand-edited saved plan or journal, settings written to the database directly).
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from cockpit.config.roles import (  # noqa: F401  (the Zitadel plan's vocabulary, named here too)
    PLATFORM_ROLE_KEYS,
    STANDARD_ROLES,
    claims_role_key,
    platform_role_keys,
    produced_role_keys,
)
from cockpit.resources.state import State


class ReservedRoleKey(ValueError):
    """A tenant's Zitadel change would create, grant, remove or revoke a platform role key."""


@dataclass(frozen=True)
class RoleSpec:
    key: str
    display_name: str
    group: str


@dataclass(frozen=True)
class ProjectTarget:
    """Where an account's roles and grants live, from its `zitadel` settings."""

    account: str
    project_id: str
    organization_id: str | None
    issuer: str | None
    prefix: str
    mappings: Mapping[str, str]
    users: Mapping[str, str]
    """E-mail → Zitadel user id, for people search cannot find."""

    def role_key(self, base: str) -> str:
        return self.mappings.get(base, self.prefix + base)

    @property
    def owned_keys(self) -> frozenset[str]:
        return frozenset(self.role_key(base) for base, _, _ in STANDARD_ROLES)


@dataclass(frozen=True)
class DesiredZitadel:
    target: ProjectTarget
    roles: Mapping[str, RoleSpec]
    grants: Mapping[str, frozenset[str]]
    """E-mail → the owned role keys that person should hold."""


@dataclass(frozen=True)
class ActualGrant:
    grant_id: str
    user_id: str
    role_keys: frozenset[str]


@dataclass(frozen=True)
class ActualZitadel:
    """What Zitadel holds for one account's project: its owned roles, and the grants and user ids
    of the people it asked about (by e-mail)."""

    roles: Mapping[str, RoleSpec]
    user_ids: Mapping[str, str]
    grants: Mapping[str, ActualGrant]
    """E-mail → that person's grant on the project."""

    def fingerprint(self) -> str:
        body = {
            "roles": sorted((r.key, r.display_name, r.group) for r in self.roles.values()),
            "grants": sorted((e, g.grant_id, sorted(g.role_keys)) for e, g in self.grants.items()),
            "users": sorted(self.user_ids.items()),
        }
        return hashlib.sha256(json.dumps(body).encode()).hexdigest()


class ZitadelAction(str, enum.Enum):
    ADD_ROLE = "add_role"
    UPDATE_ROLE = "update_role"
    REMOVE_ROLE = "remove_role"
    ADD_GRANT = "add_grant"
    UPDATE_GRANT = "update_grant"
    REVOKE_GRANT = "revoke_grant"

    @property
    def glyph(self) -> str:
        return {"add": "+", "update": "~", "remove": "-", "revoke": "-"}[self.value.split("_")[0]]


@dataclass(frozen=True)
class ZitadelChange:
    action: ZitadelAction
    account: str
    project_id: str
    subject: str
    """The role key, or the person's e-mail."""
    before: Any = None
    after: Any = None
    user_id: str | None = None
    grant_id: str | None = None
    organization_id: str | None = None
    issuer: str | None = None

    def __post_init__(self) -> None:
        touched = self.platform_keys_touched(platform_role_keys())
        if touched:
            raise ReservedRoleKey(
                f"{self.account}: {self.action.value.replace('_', ' ')} {self.subject} would change the "
                f"platform role {', '.join(sorted(touched))} in project {self.project_id}; platform "
                "super-admin roles are never created, granted or removed by a tenant's apply"
            )

    def platform_keys_touched(self, reserved: frozenset[str]) -> set[str]:
        """The platform keys (casefolded) this change adds or takes away: a role created,
        updated or removed, a key added to a grant or taken from one. Keys a grant keeps are
        not touched (a platform super admin may also be one of a tenant's people)."""
        if self.action in (ZitadelAction.ADD_ROLE, ZitadelAction.UPDATE_ROLE, ZitadelAction.REMOVE_ROLE):
            changed = {self.subject}
        else:
            before, after = set(self.before or ()), set(self.after or ())
            changed = before ^ after if self.action is ZitadelAction.UPDATE_GRANT else before | after
        return {k.casefold() for k in changed if isinstance(k, str)} & reserved

    @property
    def revokes(self) -> bool:
        """Removes a role, a grant, or some of a person's role keys: a revocation (exit 3)."""
        if self.action in (ZitadelAction.REMOVE_ROLE, ZitadelAction.REVOKE_GRANT):
            return True
        if self.action is ZitadelAction.UPDATE_GRANT:
            return bool(set(self.before or ()) - set(self.after or ()))
        return False

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value, "account": self.account, "project_id": self.project_id,
            "subject": self.subject, "before": self.before, "after": self.after,
            "user_id": self.user_id, "grant_id": self.grant_id,
            "organization_id": self.organization_id, "issuer": self.issuer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ZitadelChange":
        return cls(ZitadelAction(data["action"]), data["account"], data["project_id"], data["subject"],
                   data.get("before"), data.get("after"), data.get("user_id"), data.get("grant_id"),
                   data.get("organization_id"), data.get("issuer"))


ORDER = {
    ZitadelAction.ADD_ROLE: 0,
    ZitadelAction.UPDATE_ROLE: 1,
    ZitadelAction.ADD_GRANT: 2,
    ZitadelAction.UPDATE_GRANT: 3,
    ZitadelAction.REVOKE_GRANT: 4,
    ZitadelAction.REMOVE_ROLE: 5,
}
"""Roles exist before grants use them; grants drop a role before the role goes."""


def ordered(changes: tuple[ZitadelChange, ...]) -> list[ZitadelChange]:
    """Changes in the order they run: by action (`ORDER`), then account and subject."""
    return sorted(changes, key=lambda c: (ORDER[c.action], c.account, c.subject))


@dataclass(frozen=True)
class ZitadelPlan:
    changes: tuple[ZitadelChange, ...] = ()
    warnings: tuple[str, ...] = ()
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    """`zitadel:<account>` → hash of the Zitadel state the plan was made from."""
    note: str | None = None
    """Said once when Zitadel is skipped or not configured."""


def project_target(state: State, account: str) -> ProjectTarget | None:
    resource = state.get(("account", account, (account,)))
    settings = (resource.fields.get("zitadel") or {}) if resource else {}
    if not settings.get("project_id"):
        return None
    return ProjectTarget(
        account=account,
        project_id=str(settings["project_id"]),
        organization_id=settings.get("organization_id"),
        issuer=settings.get("issuer"),
        prefix=settings.get("role_prefix") or "",
        mappings=dict(settings.get("role_mappings") or {}),
        users={k.lower(): v for k, v in (settings.get("users") or {}).items()},
    )


def people(state: State, account: str, target: ProjectTarget) -> dict[str, frozenset[str]]:
    """Every known person of the account and the owned role keys they should hold."""
    keys: dict[str, set[str]] = {}

    def give(email: str, base: str) -> None:
        keys.setdefault(email.lower(), set()).add(target.role_key(base))

    for resource in state.for_account(account):
        kind = resource.type
        if kind == "account_admin":
            give(resource.key[0], resource.fields.get("role") or "account_admin")
        elif kind.endswith("_user") and kind.split("_")[0] in ("console", "copilot"):
            give(resource.key[0], "end_user")
        elif kind.endswith("_org_admin"):
            give(resource.key[-1], f"{kind.split('_')[0]}_org_admin")
        elif kind.endswith("_team_member") and resource.fields.get("role") == "admin":
            give(resource.key[-1], f"{kind.split('_')[0]}_team_admin")
    return {email: frozenset(roles) for email, roles in keys.items()}


def desired_zitadel(state: State, account: str) -> DesiredZitadel | None:
    target = project_target(state, account)
    if target is None:
        return None
    roles = {target.role_key(base): RoleSpec(target.role_key(base), name, group) for base, name, group in STANDARD_ROLES}
    return DesiredZitadel(target, roles, people(state, account, target))


def compare_zitadel(
    desired: DesiredZitadel, actual: ActualZitadel, former_people: set[str], reserved: frozenset[str] | None = None
) -> tuple[list[ZitadelChange], list[str]]:
    """Changes and warnings for one account. `former_people` are e-mails the database knows for
    the account (so a person removed from the config loses the account's roles).

    `reserved` (default: `platform_role_keys()` of the environment): desired keys among them
    raise `ReservedRoleKey`; Zitadel's roles among them are never the account's, so they are
    neither removed nor taken off a grant."""
    reserved = platform_role_keys() if reserved is None else reserved
    target = desired.target
    wanted_keys = set(desired.roles).union(*desired.grants.values())
    refused = sorted(k for k in wanted_keys if k.casefold() in reserved)
    if refused:
        raise ReservedRoleKey(
            f"account '{target.account}' would create or grant the platform role {', '.join(refused)} "
            f"in Zitadel project {target.project_id}; platform super-admin roles are never a tenant's: "
            "give its zitadel.role_prefix and role_mappings keys of its own"
        )
    actual_roles = {k: r for k, r in actual.roles.items() if k.casefold() not in reserved}
    common = {"account": target.account, "project_id": target.project_id, "organization_id": target.organization_id, "issuer": target.issuer}
    changes: list[ZitadelChange] = []
    for key, role in sorted(desired.roles.items()):
        current = actual_roles.get(key)
        if current is None:
            changes.append(ZitadelChange(ZitadelAction.ADD_ROLE, subject=key, after=[role.display_name, role.group], **common))
        elif (current.display_name, current.group) != (role.display_name, role.group):
            changes.append(ZitadelChange(ZitadelAction.UPDATE_ROLE, subject=key, before=[current.display_name, current.group], after=[role.display_name, role.group], **common))
    for key in sorted(set(actual_roles) - set(desired.roles)):
        changes.append(ZitadelChange(ZitadelAction.REMOVE_ROLE, subject=key, before=[actual_roles[key].display_name, actual_roles[key].group], **common))
    warnings = []
    owned = {k for k in target.owned_keys | set(actual_roles) if k.casefold() not in reserved}
    for email in sorted(set(desired.grants) | former_people):
        wanted = desired.grants.get(email, frozenset())
        user_id = actual.user_ids.get(email)
        grant = actual.grants.get(email)
        if user_id is None:
            if wanted:
                warnings.append(f"{target.account}: {email} was not found in Zitadel (project {target.project_id}); no grant until the user exists or zitadel.users names the id")
            continue
        if grant is None:
            if wanted:
                changes.append(ZitadelChange(ZitadelAction.ADD_GRANT, subject=email, after=sorted(wanted), user_id=user_id, **common))
            continue
        foreign = grant.role_keys - owned
        keep = foreign | wanted
        if not keep:
            changes.append(ZitadelChange(ZitadelAction.REVOKE_GRANT, subject=email, before=sorted(grant.role_keys), user_id=user_id, grant_id=grant.grant_id, **common))
        elif keep != grant.role_keys:
            changes.append(ZitadelChange(ZitadelAction.UPDATE_GRANT, subject=email, before=sorted(grant.role_keys), after=sorted(keep), user_id=user_id, grant_id=grant.grant_id, **common))
    return changes, warnings
