"""The comparators that make a plan, one per concern, and `build_plan`, which runs them.

Each comparator fills its own sections of one `PlanDraft` (`cockpit.plan.draft`); the list
below is the whole of what a plan holds. A new concern is a new comparator added here.
"""

from __future__ import annotations

from cockpit.plan.access import compare_access
from cockpit.plan.compare import compare_resources
from cockpit.plan.draft import Comparator, PlanSources, assemble
from cockpit.plan.model import Plan
from cockpit.plan.origins import compare_origins
from cockpit.plan.zitadel_section import compare_zitadel_section

COMPARATORS: tuple[Comparator, ...] = (
    compare_resources,        # changes, fingerprints of the database
    compare_origins,          # origins: where resources are declared now, for apply to record
    compare_access,           # access_impact
    compare_zitadel_section,  # zitadel (reads Zitadel, so last: a plan that fails cheaply fails first)
)


def build_plan(sources: PlanSources) -> Plan:
    """The whole plan of `sources`: every comparator of `COMPARATORS` on one draft."""
    return assemble(sources, COMPARATORS)
