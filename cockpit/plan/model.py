"""The plan: data only. Renderers read it, the executor runs it; neither recomputes a diff."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

from cockpit.config.snapshot import ConfigSnapshot
from cockpit.policy.impact import AccessChange
from cockpit.zitadel.desired import ZitadelChange, ZitadelPlan
from cockpit.resources.state import Address, Key
from cockpit.resources.types import audit_domain, types_by_name

SENSITIVE = "(sensitive)"
SENSITIVE_CHANGED = "(sensitive, changed)"


class Action(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"

    @property
    def glyph(self) -> str:
        return {"create": "+", "update": "~", "delete": "-"}[self.value]


@dataclass(frozen=True)
class FieldChange:
    path: tuple[str | int, ...]
    before: Any
    after: Any
    sensitive: bool = False

    @property
    def dotted(self) -> str:
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text


@dataclass(frozen=True)
class ResourceChange:
    action: Action
    type: str
    account: str | None
    key: Key
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    field_changes: tuple[FieldChange, ...] = ()
    protect: bool = False
    origin: str | None = None
    secret_fingerprint: str | None = None
    """The fingerprint the executor must find when it resolves the secret again."""
    secret_base: str | None = None
    reason: str | None = None
    """Why, for people (e.g. "account no longer in the config: suspended"). Never read by apply."""

    @property
    def address(self) -> Address:
        return (self.type, self.account, self.key)

    @property
    def kind(self) -> str:
        return types_by_name()[self.type].kind

    @property
    def domain(self) -> str:
        return audit_domain(types_by_name()[self.type], self.key)

    @property
    def label(self) -> str:
        return "/".join(self.key) if self.key else "(singleton)"


@dataclass(frozen=True)
class AccessCause:
    """A planned change that causes access changes: a grant, a membership, a policy."""

    action: Action
    type: str
    account: str | None
    key: Key
    origin: str | None = None
    """Where the config declares it (or, for a delete, declared it when it was last applied)."""

    @property
    def label(self) -> str:
        return "/".join(self.key) if self.key else "(singleton)"


@dataclass(frozen=True)
class AccessGroup:
    """The access changes of one kind (who gains or loses `what` `name`, or whose budget
    changes) that the same planned changes cause: what a reviewer reads first."""

    account: str
    domain: str
    what: str
    name: str
    gains: bool | None
    causes: tuple[AccessCause, ...]
    """Empty when no single change of the plan explains it (say, an account suspended)."""
    changes: tuple[AccessChange, ...]

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(c.subject for c in self.changes)


@dataclass(frozen=True)
class Plan:
    workspace: str
    changes: tuple[ResourceChange, ...]
    access_impact: tuple[AccessChange, ...] = ()
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    """Per account (and `*catalog*`): a digest of the actual state this plan was made from."""
    access_groups: tuple[AccessGroup, ...] = ()
    """`access_impact` grouped by the planned changes that cause it."""
    origins: Mapping[Address, str] = field(default_factory=dict)
    """Where the config declares resources whose recorded origin is missing or moved
    (`cockpit.plan.origins`); apply records them. Not a change: `has_changes` ignores them."""
    warnings: tuple[str, ...] = ()
    zitadel: ZitadelPlan = field(default_factory=ZitadelPlan)
    plan_id: str = ""
    created_at: str = ""
    config_path: str | None = None
    config: ConfigSnapshot | None = field(default=None, compare=False, repr=False)
    """The config files the plan was made from: a saved plan keeps them, so `apply FILE`
    verifies against what was reviewed (not in the public JSON plan, only in the saved file)."""

    @property
    def has_changes(self) -> bool:
        return bool(self.changes or self.zitadel.changes)

    @property
    def deletes(self) -> tuple[ResourceChange, ...]:
        return tuple(c for c in self.changes if c.action is Action.DELETE)

    @property
    def revocations(self) -> tuple[AccessChange, ...]:
        return tuple(a for a in self.access_impact if a.gains is False)

    @property
    def zitadel_revocations(self) -> tuple[ZitadelChange, ...]:
        return tuple(c for c in self.zitadel.changes if c.revokes)

    @property
    def has_deletes(self) -> bool:
        """Deletes something or revokes someone's access: exit code 3, and --allow-delete."""
        return bool(self.deletes or self.revocations or self.zitadel_revocations)

    @property
    def exit_code(self) -> int:
        return 3 if self.has_deletes else 2 if self.has_changes else 0


def access_groups_of(plan: Plan) -> tuple[AccessGroup, ...]:
    """The plan's access changes grouped by cause; for a plan made without the access
    comparator (a test's, or a saved file older than 1.2), grouped without causes."""
    if plan.access_groups or not plan.access_impact:
        return plan.access_groups
    rank = {False: 0, None: 1, True: 2}
    groups: dict[tuple, list[AccessChange]] = {}
    for item in plan.access_impact:
        groups.setdefault((item.account, rank[item.gains], item.domain, item.what, item.name, item.gains), []).append(item)
    return tuple(AccessGroup(k[0], k[2], k[3], k[4], k[5], (), tuple(v)) for k, v in sorted(groups.items(), key=lambda kv: kv[0][:5]))
