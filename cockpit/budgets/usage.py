"""Credits used in the current cycle window, rolled up by the ledger's attribution.

The cycle window is the calendar month or quarter (UTC) of the active
plan's `cycle`, and usage counts within it. `cockpit budgets renew` closes a cycle early: the
current window then starts where the newest cycle record inside the calendar window ends
(`current_window`), and that record's rollover adds to the new window's `pool`. A copilot ledger row counts toward the user, team
and org written on it (a team key `org/team` names its org, so a row with a team and no org
still counts toward that org); nothing is inferred from directory membership. A row counts
toward the `pool` when none of its scopes has an allocation in the plan, as the pool is what
the people without an allocation share. The account level counts every ledger row of the
window, console included, because the account-wide cap limits both domains.

The result is the mapping `cockpit.policy.allocations` takes: scope as the config writes it
(`org:research`, `team:research/ml`, `user:alice@acme.com`, `pool`, `account`) → credits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Container

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.config.scopes import Scope
from cockpit.store.tables import budget_cycles, usage_ledger

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Window:
    """A half-open interval [start, end) in UTC."""

    start: dt.datetime
    end: dt.datetime

    def as_dict(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end)}


def iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as every response and report writes times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cycle_window(cycle: str | None, now: dt.datetime | None = None) -> Window:
    """The calendar month (`monthly`, the default) or quarter (`quarterly`) holding `now`."""
    now = (now or dt.datetime.now(UTC)).astimezone(UTC)
    months = 3 if cycle == "quarterly" else 1
    first = (now.month - 1) // months * months + 1
    after = first + months
    start = dt.datetime(now.year, first, 1, tzinfo=UTC)
    end = dt.datetime(now.year + (after - 1) // 12, (after - 1) % 12 + 1, 1, tzinfo=UTC)
    return Window(start, end)


def current_window(connection: Connection, account_id: uuid.UUID, cycle: str | None, now: dt.datetime | None = None) -> Window:
    """The calendar window of `cycle` holding `now`, started later by a renewal inside it."""
    now = (now or dt.datetime.now(UTC)).astimezone(UTC)
    calendar = cycle_window(cycle, now)
    ends = budget_cycles.c.window_end
    renewed = connection.execute(
        sa.select(sa.func.max(ends)).where(budget_cycles.c.account_id == account_id, ends > calendar.start, ends <= now)
    ).scalar()
    if renewed is not None and renewed.tzinfo is None:
        renewed = renewed.replace(tzinfo=UTC)
    return Window(max(calendar.start, renewed) if renewed else calendar.start, calendar.end)


def rollover_into(connection: Connection, account_id: uuid.UUID, window: Window) -> float:
    """Credits rolled over into `window` by the cycle records that ended where it starts."""
    total = connection.execute(
        sa.select(sa.func.sum(budget_cycles.c.rollover_credits)).where(
            budget_cycles.c.account_id == account_id, budget_cycles.c.window_end == window.start
        )
    ).scalar()
    return float(total or 0)


class Used(dict):
    """Credits used by scope; a scope without ledger rows in the window used 0 (so every
    allocation gets its `used` and `remaining`)."""

    def __missing__(self, scope: str) -> float:
        return 0.0

    def __contains__(self, scope: object) -> bool:
        return True


def no_usage() -> Used:
    """The usage of a config that is not applied yet: nothing anywhere."""
    return Used()


def ledger_scopes(org: str | None, team: str | None, user: str | None) -> tuple[Scope, ...]:
    """The copilot scopes one ledger row is attributed to."""
    scopes = []
    org = org or (team.partition("/")[0] if team and "/" in team else None)
    if org:
        scopes.append(Scope("org", org))
    if team:
        scopes.append(Scope("team", team))
    if user:
        scopes.append(Scope("user", user.lower()))
    return tuple(scopes)


def scope_usage(connection: Connection, account_id: uuid.UUID, window: Window, allocated: Container[Scope] = ()) -> Used:
    """Credits used per scope in `window`: two grouped queries, whatever the ledger's size."""
    ledger = usage_ledger.c
    in_window = sa.and_(ledger.account_id == account_id, ledger.created_at >= window.start, ledger.created_at < window.end)
    rows = connection.execute(
        sa.select(ledger.org_key, ledger.team_key, ledger.user_email, sa.func.sum(ledger.credits))
        .where(in_window, ledger.domain == "copilot")
        .group_by(ledger.org_key, ledger.team_key, ledger.user_email)
    ).all()
    used: dict[str, Decimal] = defaultdict(Decimal)
    for org, team, user, credits in rows:
        amount = Decimal(credits or 0)
        scopes = ledger_scopes(org, team, user)
        for scope in scopes:
            used[str(scope)] += amount
        if not any(scope in allocated for scope in scopes):
            used["pool"] += amount
    total = connection.execute(sa.select(sa.func.sum(ledger.credits)).where(in_window)).scalar()
    used["account"] = Decimal(total or 0)
    return Used({scope: float(amount) for scope, amount in used.items()})


@dataclass(frozen=True)
class Spend:
    """What one person spent on one model through one endpoint in a window."""

    model: str | None
    endpoint: str | None
    requests: int
    credits: Decimal


def caller_spend(connection: Connection, account_id: uuid.UUID, window: Window, domain: str, user: str) -> list[Spend]:
    """A person's spend in `window` by model and endpoint (the endpoint is in each ledger row's
    metadata; rows written before it was recorded count as chat completions): one grouped query."""
    ledger = usage_ledger.c
    endpoint = ledger.metadata["endpoint"].as_string()
    rows = connection.execute(
        sa.select(ledger.model_name, endpoint, sa.func.count(), sa.func.sum(ledger.credits))
        .where(ledger.account_id == account_id, ledger.created_at >= window.start, ledger.created_at < window.end,
               ledger.domain == domain, ledger.user_email == user)
        .group_by(ledger.model_name, endpoint)
        .order_by(ledger.model_name, endpoint)
    ).all()
    return [Spend(model, found or "chat.completions", int(count), Decimal(total or 0)) for model, found, count, total in rows]
