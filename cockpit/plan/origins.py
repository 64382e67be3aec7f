"""Where the config declares each resource now, for the resources whose recorded origin (the
`file:line:column` the last apply stored) differs: what apply records, so that explain, the
read API and the audit show where a grant is declared even when only its line moved.

Not a change of the plan: nobody's access moves with a comment line. Apply records them with
the changes, or alone when there are none.
"""

from __future__ import annotations

from cockpit.config.source import NodeRef
from cockpit.plan.draft import PlanDraft, PlanSources


def compare_origins(sources: PlanSources, draft: PlanDraft) -> None:
    """The comparator of origins: desired resources whose origin the database lacks or has
    at another place, located relative to the tenant repo."""
    moved = {}
    for resource in sources.desired:
        ref = resource.origin
        if not isinstance(ref, NodeRef):
            continue
        origin = ref.document.origin(ref.path)
        current = sources.actual.get(resource.address)
        if current is None or current.origin != origin:
            moved[resource.address] = origin
    draft.origins = moved
