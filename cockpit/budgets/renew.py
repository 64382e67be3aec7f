"""`cockpit budgets renew`: close a cycle and write its record.

The record holds the window, the credits used in it (every ledger row of the account, console
included, as the account-wide cap counts them), the overflow charge `max(0, used −
monthly_credits)` and the rollover: the unallocated part of `monthly_credits`, capped by
`--rollover-cap` (as the old system computes it: not the unused credits). Plans and
allocations are left alone: they belong to the config. The rollover adds to the `pool` of the
window that starts where this one ends.

By default the current cycle closes now, so a new one starts at once (usage counts from
zero). `--previous` closes the last calendar window instead, for a job that runs just after a
month or quarter ends. Closing the same window twice finds the first record and writes nothing.
An audit event marks the renewal, so every server sees the new window within seconds.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cockpit.budgets.counters import credits
from cockpit.budgets.usage import UTC, Window, current_window, cycle_window, iso
from cockpit.policy.allocations import effective_allocation
from cockpit.runtime.snapshots import load_snapshot
from cockpit.store.tables import accounts, audit_events, budget_cycles, usage_ledger
from cockpit.store.engine import write_transaction


class RenewRefused(Exception):
    """Nothing to renew (no such account, no active plan); the message says what to do."""


@dataclass(frozen=True)
class CycleRecord:
    account: str
    plan: str
    window: Window
    used: Decimal
    monthly_credits: Decimal
    overflow_charge: Decimal
    rollover: Decimal
    created: bool
    """False when the window had been closed before (the existing record is returned)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "plan": self.plan,
            "window": self.window.as_dict(),
            "used_credits": float(self.used),
            "monthly_credits": float(self.monthly_credits),
            "overflow_charge_credits": float(self.overflow_charge),
            "rollover_credits": float(self.rollover),
            "created": self.created,
        }


def renew(engine: Engine, account: str, *, previous: bool = False, rollover_cap: Decimal | None = None, actor: str = "cockpit", now: dt.datetime | None = None) -> CycleRecord:
    now = (now or dt.datetime.now(UTC)).astimezone(UTC)
    with engine.connect() as connection:
        account_id = connection.execute(sa.select(accounts.c.id).where(accounts.c.name == account)).scalar()
    if account_id is None:
        raise RenewRefused(f"account {account!r} is not in the database; apply its config first")
    graph = load_snapshot(engine, account_id).graph
    allocation = effective_allocation(graph)
    if allocation is None:
        raise RenewRefused(f"account {account!r} has no active budget plan; declare one (kind BudgetPlan, active: true) and apply it")
    if rollover_cap is not None and rollover_cap < 0:
        raise RenewRefused("--rollover-cap cannot be negative")

    with write_transaction(engine) as connection:
        if previous:
            last = cycle_window(allocation.cycle, cycle_window(allocation.cycle, now).start - dt.timedelta(microseconds=1))
            window = Window(current_window(connection, account_id, allocation.cycle, last.end - dt.timedelta(microseconds=1)).start, last.end)
        else:
            window = Window(current_window(connection, account_id, allocation.cycle, now).start, now)
        c = budget_cycles.c
        existing = connection.execute(
            sa.select(c.used_credits, c.overflow_charge, c.rollover_credits, c.window_end, c.summary).where(c.account_id == account_id, c.plan_name == allocation.plan, c.window_start == window.start)
        ).first()
        if existing is not None:
            summary = existing.summary or {}
            return CycleRecord(
                account, allocation.plan, Window(window.start, existing.window_end), credits(existing.used_credits),
                credits(summary.get("monthly_credits", allocation.monthly_credits)), credits(existing.overflow_charge), credits(existing.rollover_credits), False,
            )
        ledger = usage_ledger.c
        used = credits(connection.execute(
            sa.select(sa.func.coalesce(sa.func.sum(ledger.credits), 0)).where(ledger.account_id == account_id, ledger.created_at >= window.start, ledger.created_at < window.end)
        ).scalar())
        monthly = credits(allocation.monthly_credits)
        unallocated = max(Decimal(0), credits(allocation.unallocated))
        cap = unallocated if rollover_cap is None else credits(rollover_cap)
        record = CycleRecord(account, allocation.plan, window, used, monthly, max(Decimal(0), used - monthly), min(unallocated, max(Decimal(0), cap)), True)
        summary = {**record.as_dict(), "unallocated_credits": float(unallocated)}
        connection.execute(budget_cycles.insert().values(
            id=uuid.uuid4(), account_id=account_id, plan_name=allocation.plan, window_start=window.start, window_end=window.end,
            used_credits=used, overflow_charge=record.overflow_charge, rollover_credits=record.rollover, summary=summary,
        ))
        connection.execute(audit_events.insert().values(
            id=uuid.uuid4(), account_id=account_id, domain="copilot", actor=actor, action="renew", kind="BudgetCycle",
            resource_key=f"{account}/{allocation.plan}/{iso(window.start)}", before=None, after=summary,
            # Stamped here, as apply stamps its events: servers take the newest stamp as the
            # account's version, and SQLite's own now() has whole seconds, which could tie
            # with the last apply's and leave the renewal unseen.
            created_at=now,
        ))
    return record
