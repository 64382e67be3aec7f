"""A workspace's plan and apply: config + database → plan; plan → database and Zitadel.

This package wires the stages together (config, resources, store, plan, apply) so that each of
them stays ignorant of the others; the runner calls only what is named here. One module per
job: `inputs` (the config read for a plan), `ownership` (what the config may not claim),
`planning` (the plan), `staleness` (a plan against a moved database), `applying` (checks and
the apply), `audit_shipping` (the audit events sent out), `database` (its failures, said).
"""

from cockpit.plan.draft import PlanFailed
from cockpit.workspace.applying import (
    ApplyOptions,
    ApplyOutcome,
    ApplyRefused,
    StalePlan,
    apply_plan,
    check_applicable,
)
from cockpit.workspace.inputs import PlanInputs
from cockpit.workspace.planning import Planned, make_plan, zitadel_now

__all__ = [
    "ApplyOptions",
    "ApplyOutcome",
    "ApplyRefused",
    "PlanFailed",
    "PlanInputs",
    "Planned",
    "StalePlan",
    "apply_plan",
    "check_applicable",
    "make_plan",
    "zitadel_now",
]
