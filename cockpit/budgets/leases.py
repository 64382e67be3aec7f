"""A server's leases of budget credit: requests held and settled in memory, exactly.

Reserving every request in the shared counters (`cockpit.budgets.counters`) costs a database
transaction or a Redis round trip before the call and another after it. Instead, a server leases
a share of each scope's free credit (`Counters.acquire`) and holds requests against its leases
with no I/O at all: a request is admitted when every lease of its chain has the request's
maximum cost free, and taken from each at once (the event loop runs one request at a time, so
nothing can come between the check and the take). Settling gives the unspent part back to the
leases and appends the call to the spool (`cockpit.budgets.spool`), which the server absorbs into
the ledger and the counters in batches (`Leases.absorb`).

Exactness holds because a lease is itself a hold in the shared counters: every credit a request
can spend is covered by a lease, every lease by the counters' check against the limit, so
however many servers run, what they can spend together never passes a limit. When a lease runs
short the server asks for more for the whole chain, giving back what its leases of the chain
have left in the same atomic step; near the
limit the counters reserve single requests instead (a share would no longer cover one), so the
last credits go to whichever server asks, as they did before leases. Leases idle for
`IDLE_SECONDS` give their free credit back (to other servers) and, holding nothing more, end;
all of them end when the server stops, and those of a killed server expire with its other holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Sequence

from cockpit.budgets.counters import (
    Counters,
    Grant,
    Limit,
    Refusal,
    Release,
    Reservation,
    Seed,
    Settled,
)
from cockpit.budgets.spool import Spool
from cockpit.budgets.usage import Window

log = logging.getLogger(__name__)

IDLE_SECONDS = 2.0
"""A lease not used for this long gives its free credit back."""

LeaseKey = tuple[uuid.UUID, Any, str]
"""(account id, window start, scope)."""


@dataclass(eq=False)
class Lease:
    """One scope's lease: `held` is what the counters hold for it, of which `free` is not taken
    by a call in flight and `spent` was charged by calls not yet absorbed."""

    reservation: Reservation
    held: Decimal
    free: Decimal
    limit: Decimal
    """The scope's limit when the lease was granted: after an apply changes it, no call is held
    on the lease any more (its credit goes back with the next request for more)."""
    spent: Decimal = Decimal(0)
    used_at: float = field(default_factory=time.monotonic)
    ended: bool = False
    """Given back (or expired): no new call is held on it; calls in flight still settle."""

    @property
    def scope(self) -> str:
        return self.reservation.scopes[0]


@dataclass(eq=False)
class Hold:
    """A call's hold on the leases of its chain."""

    leases: tuple[Lease, ...]
    amount: Decimal
    window: Window


ACQUIRE_ROUNDS = 16
"""How often one request asks the counters for fresh leases (others taking them first) before
it gives up (a 503: the budget could not be checked), rather than loop for ever on grants that
never cover it. Waiting for other requests' answers does not count."""


class Leases:
    """The leases of one server process, and the spool of what it settled against them."""

    def __init__(self, counters: Counters, spool: Spool) -> None:
        self.counters = counters
        self.spool = spool
        self._leases: dict[LeaseKey, Lease] = {}
        self._by_id: dict[uuid.UUID, Lease] = {}
        self._pending: list[tuple[Settled, bytes | None]] = []
        """Settled calls appended to the spool and not yet absorbed, with their spool lines
        (None for a call the spool could not take)."""
        self._asking: dict[uuid.UUID, asyncio.Future] = {}
        """Per account, the request for leases the counters are answering."""

    # -- the hot path: no I/O but the spool's append --------------------------------------

    def take(self, account_id: uuid.UUID, window: Window, limits: Sequence[Limit], amount: Decimal) -> Hold | None:
        """Hold `amount` on every lease of the chain, or nothing when one falls short."""
        leases = []
        for limit in limits:
            lease = self._leases.get((account_id, window.start, limit.scope))
            if lease is None or lease.free < amount or lease.ended or lease.limit != limit.limit:
                return None
            leases.append(lease)
        now = time.monotonic()
        for lease in leases:
            lease.free -= amount
            lease.used_at = now
        return Hold(tuple(leases), amount, window)

    def settle(self, hold: Hold, charged: Decimal, row: Mapping[str, Any] | None) -> None:
        """Charge a call held on leases (`charged` ≤ its hold) and spool its ledger row."""
        for lease in hold.leases:
            lease.free += hold.amount - charged
            lease.spent += charged
        if row is None:  # nothing to record: charged is 0
            return
        self.record(row, hold)

    def record(self, row: Mapping[str, Any], hold: Hold | None = None) -> None:
        """Spool a ledger row (of a call held on `hold`, or of one without budget limits)."""
        self.spool_call(Settled(row, hold.window.start if hold else row["created_at"], tuple((lease.scope, lease.reservation.id, lease.reservation.token) for lease in hold.leases) if hold else ()))

    def spool_call(self, call: Settled) -> None:
        """Spool a settled call and queue it for absorbing. A spool the disk refuses (full,
        failing), or a row it cannot encode, is logged and the call still absorbed from memory:
        only its durability against a kill is lost, never its charge."""
        line: bytes | None = None
        try:
            line = self.spool.append(call)
        except (OSError, TypeError, ValueError) as exc:  # the disk, or a row JSON cannot carry
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            log.error("spool: call %s not written to %s (%s): it is absorbed from memory only", call.row.get("request_id"), self.spool.directory, why)
        self._pending.append((call, line))

    # -- when the leases run short ----------------------------------------------------------

    async def acquire(self, account_id: uuid.UUID, window: Window, limits: Sequence[Limit], amount: Decimal, seed: Seed) -> Hold | Reservation | Refusal:
        """A hold on fresh leases, a reservation of this call alone, or the refusal.

        One request per account asks the counters at a time; the others wait for its answer,
        all together, and then take from the leases it brought (or one of them asks next when
        those do not cover them). A queue would wake them one by one instead, each after the
        one before had run on to its next await: a burst of 20 streams after an idle pause
        waited up to 60 ms that way for leases that covered all of them."""
        asked_for = 0
        while True:
            hold = self.take(account_id, window, limits, amount)
            if hold is not None:
                return hold
            asking = self._asking.get(account_id)
            if asking is not None:
                await asyncio.wait((asking,))  # shared: this request going away does not cancel it
                continue
            if asked_for == ACQUIRE_ROUNDS:
                raise RuntimeError(f"leases of account {account_id} fell short {ACQUIRE_ROUNDS} times in a row")
            asked_for += 1
            returned = self._return_chain(account_id, window, limits)
            asked = self._asking[account_id] = asyncio.ensure_future(asyncio.to_thread(self.counters.acquire, account_id, window, limits, amount, returned, seed))
            asked.add_done_callback(lambda done: self._answered(done, account_id, window, limits))
            try:
                found = await asyncio.shield(asked)
            except asyncio.CancelledError:  # the caller went away: a reservation for it alone goes back
                asked.add_done_callback(self._give_back)
                raise
            if not isinstance(found, Grant):
                return found
            # Fresh leases: take from them (requests that waited may have taken first).

    def _answered(self, done: asyncio.Future, account_id: uuid.UUID, window: Window, limits: Sequence[Limit]) -> None:
        """The counters answered, before any request that waited runs: a grant becomes this
        server's leases, whether or not the request that asked is still there."""
        if self._asking.get(account_id) is done:
            del self._asking[account_id]
        if not done.cancelled() and done.exception() is None and isinstance(done.result(), Grant):
            self._install(done.result(), account_id, window, limits)

    def _install(self, grant: Grant, account_id: uuid.UUID, window: Window, limits: Sequence[Limit]) -> None:
        limit_of = {limit.scope: limit.limit for limit in limits}
        for scope, (reservation, granted) in grant.leases.items():
            self._add(Lease(reservation, granted, granted, limit_of[scope]), (account_id, window.start, scope))

    def _give_back(self, done: asyncio.Future) -> None:
        """A reservation the counters made for a call whose request was cancelled."""
        if not done.cancelled() and done.exception() is None and isinstance(done.result(), Reservation):
            asyncio.ensure_future(asyncio.to_thread(self.counters.settle, done.result(), Decimal(0)))

    def _return_chain(self, account_id: uuid.UUID, window: Window, limits: Sequence[Limit]) -> list[Release]:
        """The chain's leases end: their free credit goes back with the request for more (so
        the counters see all of it), and the grant, if any, replaces every one of them."""
        returned = []
        for limit in limits:
            lease = self._leases.get((account_id, window.start, limit.scope))
            if lease is not None:
                returned.append(self._end(lease))
        return returned

    def _add(self, lease: Lease, key: LeaseKey) -> None:
        self._leases[key] = lease
        self._by_id[lease.reservation.id] = lease

    def _end(self, lease: Lease) -> Release:
        """Stop holding calls on `lease`; give back its free credit, and the whole lease when
        nothing is in flight or unabsorbed on it."""
        key: LeaseKey = (lease.reservation.account_id, lease.reservation.window.start, lease.scope)
        if self._leases.get(key) is lease:
            del self._leases[key]
        lease.ended = True
        free, lease.free = lease.free, Decimal(0)
        lease.held -= free
        if lease.held <= 0:
            self._by_id.pop(lease.reservation.id, None)
            return Release(lease.reservation, free, close=True)
        return Release(lease.reservation, free)

    # -- in the background -------------------------------------------------------------------

    def idle(self, now: float | None = None) -> list[Release]:
        """End the leases unused for `IDLE_SECONDS` (and those of past windows)."""
        now = time.monotonic() if now is None else now
        return [self._end(lease) for lease in list(self._leases.values()) if now - lease.used_at >= IDLE_SECONDS]

    def drained(self) -> list[Release]:
        """What calls that were in flight when their lease ended gave back since: released,
        and the lease closed once it holds nothing more."""
        releases = []
        for lease in [lease for lease in self._by_id.values() if lease.ended and (lease.free > 0 or lease.held <= 0)]:
            releases.append(self._end(lease))
        return releases

    def ending(self) -> list[Release]:
        """Everything, for a server that stops."""
        releases = [self._end(lease) for lease in list(self._leases.values())]
        return releases + self.drained()

    def pending(self) -> list[Settled]:
        return [call for call, _line in self._pending]

    def spooled(self) -> list[tuple[Settled, bytes | Settled]]:
        """The pending calls, each with what the absorber takes of it: its spool line (already
        encoded), or the call itself where the spool could not take it."""
        return [(call, call if line is None else line) for call, line in self._pending]

    def absorbed(self, calls: Sequence[Settled]) -> None:
        """`calls` are in the ledger and the counters: their cost leaves the leases' holds."""
        done = {id(call) for call in calls}
        self._pending = [pending for pending in self._pending if id(pending[0]) not in done]
        for call in calls:
            for _scope, lease_id, _token in call.leases:
                lease = self._by_id.get(lease_id)
                if lease is not None:
                    lease.spent -= call.credits
                    lease.held -= call.credits
        if not self._pending:
            self.spool.rotate()

    def reservations(self) -> list[Reservation]:
        """The leases' holds, for renewal."""
        return [lease.reservation for lease in self._by_id.values()]

    def forget(self, lease_ids: set[uuid.UUID]) -> None:
        """Leases the counters no longer hold (expired while the server could not renew them):
        no call is held on them any more."""
        for lease_id in lease_ids:
            lease = self._by_id.get(lease_id)
            if lease is not None:
                self._end(lease)
