"""The access impact of a plan: who gains or loses what once it is applied.

Compares the effective access of the actual state with that of the state the database will
hold after the apply (`cockpit.policy.impact`).
"""

from __future__ import annotations

from cockpit.plan.draft import PlanContext, PlanDraft, PlanSources
from cockpit.policy.impact import access_impact
from cockpit.resources.state import State


def compare_access(sources: PlanSources, draft: PlanDraft) -> None:
    """The comparator of access impact: every gain, loss and budget change the plan makes."""
    draft.access_impact = access_impact(sources.actual, state_after(sources.desired, sources.actual, sources.context))


def state_after(desired: State, actual: State, context: PlanContext) -> State:
    """What the database will hold after the apply: the desired state, plus the resources of
    accounts the config dropped, which are suspended rather than deleted."""
    after = State(dict(desired.resources))
    for resource in actual:
        account = resource.account
        if account and account not in context.config_accounts and account not in context.hard_delete_accounts:
            after.add(resource)
    return after
