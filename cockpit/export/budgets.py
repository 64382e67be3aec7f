"""Equal distributions back from the allocations they became; the BudgetPlan kind's exporter
uses them, so they live beside it in `cockpit.resources.equal_shares`."""

from cockpit.resources.equal_shares import Distribution, EqualShare, regroup, reproduces

__all__ = ["Distribution", "EqualShare", "regroup", "reproduces"]
