"""Why an answer is what it is: the resources that decided it, at which scope, declared where.

Explanations are for people (`cockpit explain`, the plan, the read API); nothing decides on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.resources.state import Key, Resource


@dataclass(frozen=True)
class Source:
    """One resource that decided, or contributed to, an effective answer."""

    type: str
    """Resource type, e.g. `model_grant`, `guardrail_assignment`, `account`."""
    key: Key
    scope: str
    """The scope it applies at, as the config writes it: `team:research/ml`, `account`."""
    detail: str = ""
    """What it says, e.g. `allow`, `deny`, `enabled`, `model_policy.copilot.deny`."""
    origin: str | None = None
    """`file:line:column` of the config that declares it; from the database, where the last
    apply recorded it (None for a resource applied before origins were recorded)."""

    def __str__(self) -> str:
        what = f"{self.type.replace('_', ' ')} {self.detail}".rstrip()
        where = f" ({self.origin})" if self.origin else ""
        return f"{what} at {self.scope}{where}"


def origin_of(resource: Resource | None) -> str | None:
    """Where the config declares a resource; located now (desired resources locate lazily)."""
    return None if resource is None or resource.origin is None else str(resource.origin)


def source_of(resource: Resource, scope: str, detail: str = "") -> Source:
    return Source(resource.type, resource.key, scope, detail, origin_of(resource))


def explain(sources: tuple[Source, ...] | list[Source]) -> str:
    return "; ".join(str(s) for s in sources)
