"""The plan under construction, and what the comparators that fill it read.

A plan is made by a list of comparators, one per concern (the database resources, access
impact, Zitadel), as Alembic's autogenerate composes its comparators: each reads the same
`PlanSources` and fills its own sections of one `PlanDraft`; `assemble` is the only place a
`Plan` is made from them. A comparator that cannot plan raises `PlanFailed`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from cockpit.config.snapshot import ConfigSnapshot
from cockpit.config.validate import ValidationResult
from cockpit.plan.model import AccessGroup, Plan, ResourceChange
from cockpit.policy.impact import AccessChange
from cockpit.resources.state import Address, State
from cockpit.zitadel.desired import ZitadelPlan


class PlanFailed(Exception):
    """The config is invalid or conflicts with the database: nothing can be planned."""

    def __init__(self, messages: list[str], validation: ValidationResult | None = None) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages
        self.validation = validation


@dataclass(frozen=True)
class PlanContext:
    """What the comparison needs besides the two states: ownership and explicit choices."""

    workspace: str
    config_accounts: frozenset[str]
    hard_delete_accounts: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()
    config_path: str | None = None
    snapshot: ConfigSnapshot | None = None
    """The files the config was read from (kept by a saved plan)."""


@dataclass(frozen=True)
class PlanSources:
    """What every comparator reads: the desired and the actual state, the context, and the
    environment for a comparator that asks a system outside the database (Zitadel)."""

    desired: State
    actual: State
    context: PlanContext
    environ: Mapping[str, str] = field(default_factory=dict)
    skip_zitadel: bool = False


@dataclass
class PlanDraft:
    """The sections of a plan, filled by the comparators; each section has one comparator."""

    changes: tuple[ResourceChange, ...] = ()
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    access_impact: tuple[AccessChange, ...] = ()
    access_groups: tuple[AccessGroup, ...] = ()
    origins: Mapping[Address, str] = field(default_factory=dict)
    zitadel: ZitadelPlan = field(default_factory=ZitadelPlan)

    def finish(self, context: PlanContext) -> Plan:
        """The plan of these sections, with its own id and time (to the second, UTC)."""
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        return Plan(
            workspace=context.workspace,
            changes=self.changes,
            access_impact=self.access_impact,
            access_groups=self.access_groups,
            origins=self.origins,
            fingerprints=self.fingerprints,
            warnings=context.warnings,
            zitadel=self.zitadel,
            plan_id=str(uuid.uuid4()),
            created_at=now.isoformat().replace("+00:00", "Z"),
            config_path=context.config_path,
            config=context.snapshot,
        )


class Comparator(Protocol):
    """One concern of the plan: reads the sources, fills its sections of the draft."""

    def __call__(self, sources: PlanSources, draft: PlanDraft) -> None: ...


def assemble(sources: PlanSources, comparators: Sequence[Comparator]) -> Plan:
    """The plan the `comparators` make of `sources`, in their order, on one draft."""
    draft = PlanDraft()
    for comparator in comparators:
        comparator(sources, draft)
    return draft.finish(sources.context)
