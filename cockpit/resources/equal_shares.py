"""Equal distributions back from the allocations they became.

`distribute_equally` expands into one allocation per scope with `source: equal`; exporting those
as plain `allocations` would turn them into `source: manual`, a diff. So they are regrouped into
`distribute_equally` entries. The original grouping is gone from the database, and two entries
with the same `overflow_cap` are indistinguishable, so a group is rebuilt per cap and checked by
recomputing the split with the same remainder rule; a group that does not come out identical is
split per distinct amount, which always does (equal amounts have no remainder).
"""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.credits import split_equally


@dataclass(frozen=True)
class EqualShare:
    scope: str
    """The scope as the config writes it, e.g. `team:research/ml` (the split sorts these)."""
    cents: int
    cap_cents: int | None


@dataclass(frozen=True)
class Distribution:
    scopes: tuple[str, ...]
    total_cents: int
    cap_cents: int | None


def reproduces(shares: list[EqualShare]) -> bool:
    """Whether one `distribute_equally` entry over these scopes gives exactly these amounts."""
    total = sum(s.cents for s in shares)
    return split_equally(total, [s.scope for s in shares]) == {s.scope: s.cents for s in shares}


def regroup(shares: list[EqualShare]) -> list[Distribution]:
    """`distribute_equally` entries that expand back into exactly these shares."""
    by_cap: dict[int | None, list[EqualShare]] = {}
    for share in shares:
        by_cap.setdefault(share.cap_cents, []).append(share)
    groups: list[list[EqualShare]] = []
    for group in by_cap.values():
        if reproduces(group):
            groups.append(group)
            continue
        by_amount: dict[int, list[EqualShare]] = {}
        for share in group:
            by_amount.setdefault(share.cents, []).append(share)
        groups.extend(by_amount.values())
    distributions = [
        Distribution(
            tuple(sorted(s.scope for s in group)),
            sum(s.cents for s in group),
            group[0].cap_cents,
        )
        for group in groups
    ]
    return sorted(distributions, key=lambda d: d.scopes)
