"""Budget counters that concurrent requests cannot overspend: reserve, then settle.

A request reserves its maximum cost on every scope of its chain (`user:…`, `team:…`,
`org:…` or `pool`, and `account`) in one atomic step that first checks each scope's limit
against what is used plus what other requests hold; after the call it settles, in one atomic
step, the real cost (used += cost, reserved −= the hold). So however many requests run at once,
on however many replicas, the sum of what they can spend never passes a limit.

Two stores keep the counters, with the same semantics:
- `SqlCounters`: the `budget_counters` table, one short transaction per step. Reserving
  (`acquire`) first locks the chain's rows (in one order on PostgreSQL, the write lock on
  SQLite) and reads them with one UPDATE … RETURNING, so its check sees what every other
  request holds until it commits.
- `RedisCounters` (when `REDIS_URL` is set): one Lua script per step on one hash per account and
  window, atomic on the Redis server, shared by every replica. Settling pushes the call's
  ledger row onto a Redis list in the same script (`cockpit.budgets.ledger.RedisLedgerWriter`
  moves it to the database), so here too a kill cannot part counters from ledger.

A server does not take every request to the shared counters. While a scope has plenty of
credit left, it is *leased*: `acquire` grants the server a share (`LEASE_SHARE`, a sixteenth) of
what the scope has free, held in the counters like any reservation, and the server then holds
and settles requests against its leases in memory (`cockpit.budgets.leases`), folding what they
cost into the counters in batches (`absorb`: used += cost, the lease's hold −= cost). As the
scope's free credit falls, so do the shares granted; once a sixteenth of it no longer covers a
request, `acquire` reserves that request alone, as above, and its settlement writes its ledger
row with the counters. Either way the holds of all servers together never pass a limit.

Counters start from the usage ledger the first time a window's scope is touched (`seed`), so a
flushed Redis or a new replica picks up where the ledger is. A reservation is a lease: it
expires `hold_seconds` (60) after it was taken unless the server that holds it renews it
(`renew`, every few seconds while the call runs), so the credits held by a server that was
killed are given back by `release_expired` within about a minute, while a long stream on a live
server keeps its hold. In the database, settling writes the call's ledger row in the same
transaction as the counters, so a kill can never leave counters and ledger apart.
Amounts are Decimal credits with 8 decimals, as in the ledger.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import uuid
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cockpit.budgets.ledger import encode_row, ledger_namespace, ledger_queue
from cockpit.budgets.usage import UTC, Window
from cockpit.store.engine import write_transaction
from cockpit.store.inserts import copy_rows, insert_new
from cockpit.store.tables import budget_counters, budget_reservations, usage_ledger

LEASE_SHARE = 16
"""A lease is granted 1/LEASE_SHARE of what its scope has free; a request that such a share
would not cover is reserved alone."""
QUANTUM = Decimal("0.00000001")
"""The ledger's precision: credits carry 8 decimals."""
HOLD_SECONDS = 60.0
"""How long a reservation lives without being renewed by its server before `release_expired`
gives it back."""

Seed = Callable[[Sequence[str]], Mapping[str, Decimal]]
"""Credits the ledger already holds in the window for the given scopes."""


def credits(value: Decimal | float | int | str) -> Decimal:
    """`value` as credits with the ledger's 8 decimals."""
    return Decimal(str(value)).quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def ceiling_credits(value: Decimal) -> Decimal:
    """Round a maximum cost up, so a reservation is never smaller than the charge."""
    return value.quantize(QUANTUM, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class Limit:
    scope: str
    limit: Decimal


@dataclass(frozen=True)
class Reservation:
    id: uuid.UUID
    account_id: uuid.UUID
    window: Window
    scopes: tuple[str, ...]
    amount: Decimal
    token: str = ""
    """What the store needs to find it again (Redis: the member of the reservations set)."""


@dataclass(frozen=True)
class Refusal:
    """The first scope of the chain (most specific first) that cannot take the request."""

    scope: str
    limit: Decimal
    used: Decimal
    reserved: Decimal

    @property
    def left(self) -> Decimal:
        return max(Decimal(0), self.limit - self.used - self.reserved)


@dataclass(frozen=True)
class Grant:
    """What `acquire` leased to a server: per scope, the lease (a reservation of that scope
    alone, renewed like any) and the credits it grew by."""

    leases: Mapping[str, tuple[Reservation, Decimal]]


@dataclass(frozen=True)
class Settled:
    """A call settled against leases, as the spool keeps it until `absorb` folds it in: its
    ledger row and, per leased scope, the lease it was held on."""

    row: Mapping[str, Any]
    window_start: dt.datetime
    leases: tuple[tuple[str, uuid.UUID, str], ...]
    """(scope, lease id, lease token) per scope the call was held on."""

    @property
    def credits(self) -> Decimal:
        found = self.row["credits"]
        return found if isinstance(found, Decimal) else Decimal(found)

    @property
    def account_id(self) -> uuid.UUID:
        found = self.row["account_id"]
        return found if isinstance(found, uuid.UUID) else uuid.UUID(str(found))


@dataclass(frozen=True)
class Release:
    """Credits a server gives back from a lease; `close` gives back all it holds and ends it."""

    lease: Reservation
    amount: Decimal
    close: bool = False


class Counters(Protocol):
    def settle(self, reservation: Reservation, cost: Decimal, ledger_row: Mapping[str, Any] | None = None) -> bool:
        """Charge `cost` and drop the hold; True when `ledger_row` was written with it."""
        ...

    def renew(self, reservations: Sequence[Reservation]) -> set[uuid.UUID]:
        """Push back the expiry of holds whose calls are still running; the ids of those it
        found (a hold missing was given back, its server unable to renew it in time)."""
        ...

    def release_expired(self, now: dt.datetime | None = None) -> int: ...

    def acquire(self, account_id: uuid.UUID, window: Window, limits: Sequence[Limit], amount: Decimal, returned: Sequence[Release], seed: Seed) -> Grant | Reservation | Refusal:
        """In one atomic step: give back `returned`, then lease a share of every scope of the
        chain when each share covers `amount`, else reserve `amount` alone, else refuse."""
        ...

    def absorb(self, settled: Sequence[Settled], releases: Sequence[Release] = ()) -> None:
        """Write the calls' ledger rows and move what they cost from their leases' holds to
        `used`, once per row however often a batch is retried; give back `releases`."""
        ...

    def used(self, account_id: uuid.UUID, window: Window, scopes: Sequence[str]) -> dict[str, tuple[Decimal, Decimal]]: ...

    def close(self) -> None: ...


def share_of(free: Decimal) -> Decimal:
    """The credits a lease is granted of what its scope has free."""
    return (free / LEASE_SHARE).quantize(QUANTUM, rounding=ROUND_FLOOR) if free > 0 else Decimal(0)


def first_refusal(limits: Sequence[Limit], amount: Decimal, found: Mapping[str, tuple[Decimal, Decimal]]) -> Refusal | None:
    """The most specific scope with no credit left, or that this request would overdraw."""
    for limit in limits:
        used, reserved = found[limit.scope]
        held = used + reserved
        if held >= limit.limit or held + amount > limit.limit:
            return Refusal(limit.scope, limit.limit, used, reserved)
    return None


class SqlCounters:
    """Counters in the application database."""

    def __init__(self, engine: Engine, hold_seconds: float = HOLD_SECONDS) -> None:
        self.engine = engine
        self.hold = dt.timedelta(seconds=hold_seconds)
        # SQLite has one write lock for the whole file, and its busy handler sleeps and polls:
        # threads of one process queue here instead (FIFO, no polling); other processes still
        # wait on the file lock. PostgreSQL locks rows, so requests of unrelated chains overlap.
        self._serial = threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    def settle(self, reservation: Reservation, cost: Decimal, ledger_row: Mapping[str, Any] | None = None) -> bool:
        with self._serial, write_transaction(self.engine) as connection:
            self._lock(connection, [(reservation.account_id, reservation.window.start, scope) for scope in reservation.scopes])
            held = connection.execute(
                budget_reservations.delete().where(budget_reservations.c.id == reservation.id)
            ).rowcount
            c = budget_counters.c
            values: dict[str, Any] = {"used": c.used + cost}
            if held:
                values["reserved"] = c.reserved - reservation.amount
            connection.execute(self._rows(reservation.account_id, reservation.window, reservation.scopes).values(**values))
            if ledger_row is not None:
                connection.execute(insert_new(connection, usage_ledger, [dict(ledger_row)], ("request_id",)))
        return ledger_row is not None

    def renew(self, reservations: Sequence[Reservation]) -> set[uuid.UUID]:
        if not reservations:
            return set()
        r = budget_reservations.c
        ids = sorted(held.id for held in reservations)  # one lock order, as absorbing takes them
        with write_transaction(self.engine) as connection:
            return set(connection.execute(
                budget_reservations.update().where(r.id.in_(ids)).values(expires_at=dt.datetime.now(UTC) + self.hold).returning(r.id)
            ).scalars())

    def release_expired(self, now: dt.datetime | None = None) -> int:
        now = now or dt.datetime.now(UTC)
        r = budget_reservations.c
        with write_transaction(self.engine) as connection:
            expired = connection.execute(sa.select(r.id, r.account_id, r.window_start, r.scopes, r.amount).where(r.expires_at < now)).all()
            self._lock(connection, [(row.account_id, row.window_start, scope) for row in expired for scope in row.scopes])
            for row in expired:  # re-checked at delete: a renewal since the SELECT keeps the hold
                if connection.execute(budget_reservations.delete().where(r.id == row.id, r.expires_at < now)).rowcount:
                    window = Window(row.window_start, row.window_start)
                    connection.execute(
                        self._rows(row.account_id, window, row.scopes).values(reserved=budget_counters.c.reserved - row.amount)
                    )
        return len(expired)

    def acquire(self, account_id: uuid.UUID, window: Window, limits: Sequence[Limit], amount: Decimal, returned: Sequence[Release], seed: Seed) -> Grant | Reservation | Refusal:
        scopes = sorted({limit.scope for limit in limits})
        c = budget_counters.c
        for _ in range(3):
            with self._locked(account_id, window, {*scopes, *(r.lease.scopes[0] for r in returned)}) as (connection, transaction):
                self._release(connection, returned)
                # A no-op UPDATE … RETURNING reads the chain and takes its row locks (the write
                # lock on SQLite) until the transaction ends, as `reserve` does.
                rows = connection.execute(self._rows(account_id, window, scopes).values(reserved=c.reserved).returning(c.scope, c.used, c.reserved)).all()
                found = {row.scope: (credits(row.used), credits(row.reserved)) for row in rows}
                missing = [scope for scope in scopes if scope not in found]
                if missing:
                    transaction.commit()
                    returned = ()  # given back already
                    self._seed(account_id, window, missing, seed)
                    continue
                refusal = first_refusal(limits, amount, found)
                if refusal is not None:
                    transaction.commit()  # what was given back stays given back
                    return refusal
                shares = {limit.scope: share_of(limit.limit - sum(found[limit.scope])) for limit in limits}
                expires = dt.datetime.now(UTC) + self.hold
                if all(share >= amount for share in shares.values()):
                    leases = {}
                    for scope, share in shares.items():
                        lease = Reservation(uuid.uuid4(), account_id, window, (scope,), share)
                        connection.execute(budget_reservations.insert().values(id=lease.id, account_id=account_id, window_start=window.start, scopes=[scope], amount=share, expires_at=expires))
                        connection.execute(self._rows(account_id, window, [scope]).values(reserved=c.reserved + share))
                        leases[scope] = (lease, share)
                    transaction.commit()
                    return Grant(leases)
                reservation = Reservation(uuid.uuid4(), account_id, window, tuple(scopes), amount)
                connection.execute(self._rows(account_id, window, scopes).values(reserved=c.reserved + amount))
                connection.execute(budget_reservations.insert().values(id=reservation.id, account_id=account_id, window_start=window.start, scopes=list(scopes), amount=amount, expires_at=expires))
                transaction.commit()
                return reservation
        raise RuntimeError("budget counters could not be created")  # pragma: no cover - seeding inserts them

    def absorb(self, settled: Sequence[Settled], releases: Sequence[Release] = ()) -> None:
        with self._serial, write_transaction(self.engine) as connection:
            self._lock(connection, [
                *((call.account_id, call.window_start, scope) for call in settled for scope, _id, _token in call.leases),
                *((r.lease.account_id, r.lease.window.start, r.lease.scopes[0]) for r in releases),
            ])
            inserted = _insert_new_rows(connection, settled)
            for (account_id, window_start, scope, lease_id), cost in sorted(_costs(call for call in settled if call.row["request_id"] in inserted).items(), key=lambda item: item[0][3]):
                held = connection.execute(
                    budget_reservations.update().where(budget_reservations.c.id == lease_id).values(amount=budget_reservations.c.amount - cost)
                ).rowcount
                c = budget_counters.c
                values: dict[str, Any] = {"used": c.used + cost}
                if held:  # else the lease expired and gave back its whole hold, this cost included
                    values["reserved"] = c.reserved - cost
                connection.execute(self._rows(account_id, Window(window_start, window_start), [scope]).values(**values))
            self._release(connection, releases)

    def _release(self, connection: Connection, releases: Sequence[Release]) -> None:
        r, c = budget_reservations.c, budget_counters.c
        for release in sorted(releases, key=lambda release: release.lease.id):  # one lock order
            lease = release.lease
            if release.close:
                amount = connection.execute(budget_reservations.delete().where(r.id == lease.id).returning(r.amount)).scalar()
            else:
                amount = release.amount if connection.execute(budget_reservations.update().where(r.id == lease.id).values(amount=r.amount - release.amount)).rowcount else None
            if amount:
                connection.execute(self._rows(lease.account_id, lease.window, lease.scopes).values(reserved=c.reserved - amount))

    def used(self, account_id: uuid.UUID, window: Window, scopes: Sequence[str]) -> dict[str, tuple[Decimal, Decimal]]:
        c = budget_counters.c
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(c.scope, c.used, c.reserved).where(c.account_id == account_id, c.window_start == window.start, c.scope.in_(list(scopes)))
            ).all()
        return {row.scope: (credits(row.used), credits(row.reserved)) for row in rows}

    def close(self) -> None:
        pass

    @contextlib.contextmanager
    def _locked(self, account_id: uuid.UUID, window: Window, scopes: Iterable[str]) -> Iterator[tuple[Connection, Any]]:
        """A write transaction holding the counters of `scopes` (the caller commits or rolls
        back): one thread of this process at a time on SQLite, rows locked in order on PostgreSQL."""
        with self._serial, self.engine.connect() as connection:
            connection.execution_options(sqlite_begin="IMMEDIATE")  # as write_transaction
            transaction = connection.begin()
            self._lock(connection, [(account_id, window.start, scope) for scope in scopes])
            yield connection, transaction

    @staticmethod
    def _lock(connection: Connection, keys: Iterable[tuple[uuid.UUID, dt.datetime, str]]) -> None:
        """On PostgreSQL, lock the counters a transaction will change first, all in one order
        (account, window, scope), so transactions that change several never deadlock. SQLite
        has one write lock (taken by the transaction's first write) and needs none."""
        if connection.dialect.name != "postgresql":
            return
        groups: dict[tuple[uuid.UUID, dt.datetime], set[str]] = {}
        for account_id, window_start, scope in keys:
            groups.setdefault((account_id, window_start), set()).add(scope)
        c = budget_counters.c
        for (account_id, window_start), scopes in sorted(groups.items()):
            connection.execute(
                sa.select(c.id).where(c.account_id == account_id, c.window_start == window_start, c.scope.in_(sorted(scopes))).order_by(c.scope).with_for_update()
            )

    @staticmethod
    def _rows(account_id: uuid.UUID, window: Window, scopes: Sequence[str]) -> sa.Update:
        c = budget_counters.c
        return budget_counters.update().where(c.account_id == account_id, c.window_start == window.start, c.scope.in_(list(scopes)))

    def _seed(self, account_id: uuid.UUID, window: Window, scopes: Sequence[str], seed: Seed) -> None:
        used = seed(scopes)
        rows = [
            {"id": uuid.uuid4(), "account_id": account_id, "window_start": window.start, "scope": scope, "used": credits(used.get(scope, 0)), "reserved": Decimal(0)}
            for scope in scopes
        ]
        with write_transaction(self.engine) as connection:
            connection.execute(insert_new(connection, budget_counters, rows, ("account_id", "window_start", "scope")))


def _insert_new_rows(connection: Connection, settled: Sequence[Settled]) -> set[str]:
    """Write the calls' ledger rows that are not there yet; the request ids written. The
    spool's writer (or, once it died, the one server that holds its file) is the only one
    absorbing its calls, so rows not found first are inserted without conflict: one SELECT
    and one COPY (an executemany on SQLite), far cheaper per row than an INSERT … ON CONFLICT
    … RETURNING."""
    if not settled:
        return set()
    ids = [str(call.row["request_id"]) for call in settled]
    existing = set(connection.execute(sa.select(usage_ledger.c.request_id).where(usage_ledger.c.request_id.in_(ids))).scalars())
    fresh = [call.row for call in settled if call.row["request_id"] not in existing]
    if fresh:
        copy_rows(connection, usage_ledger, fresh)
    return {row["request_id"] for row in fresh}


def _costs(settled: Iterable[Settled]) -> dict[tuple[uuid.UUID, dt.datetime, str, uuid.UUID], Decimal]:
    """What the calls cost per lease: (account, window start, scope, lease id) → credits."""
    costs: dict[tuple[uuid.UUID, dt.datetime, str, uuid.UUID], Decimal] = {}
    for call in settled:
        account_id = call.account_id
        for scope, lease_id, _token in call.leases:
            key = (account_id, call.window_start, scope, lease_id)
            costs[key] = costs.get(key, Decimal(0)) + call.credits
    return costs


# -- Redis ------------------------------------------------------------------------------------

_RELEASE = """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
local amount = tonumber(ARGV[2])
for i = 4, #ARGV do
  redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[i], -amount)
end
return 1
"""
"""Give back an expired hold, unless it was renewed since it was found expired."""

_SETTLE = """
local held = redis.call('ZREM', KEYS[2], ARGV[1])
local amount = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
for i = 5, #ARGV do
  if held == 1 then redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[i], -amount) end
  if cost ~= 0 then redis.call('HINCRBY', KEYS[1], 'u:' .. ARGV[i], cost) end
end
if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[4]) end
return held
"""

_NEGATE = """
local function negate(x)
  if x == '0' then return '0' end  -- Redis does not take '-0' for an integer
  if string.sub(x, 1, 1) == '-' then return string.sub(x, 2) end
  return '-' .. x
end
"""

_ACQUIRE = _NEGATE + """
local amount = tonumber(ARGV[1])
local share = tonumber(ARGV[2])
local n = tonumber(ARGV[6])
local m = tonumber(ARGV[7])
local base = 7
local rbase = base + 4 * n
for j = 0, m - 1 do
  local scope, id, member, amt, close = ARGV[rbase + 5*j + 1], ARGV[rbase + 5*j + 2], ARGV[rbase + 5*j + 3], ARGV[rbase + 5*j + 4], ARGV[rbase + 5*j + 5]
  local held = redis.call('HGET', KEYS[1], 'l:' .. id)
  if held then
    if close == '1' then
      amt = held
      redis.call('HDEL', KEYS[1], 'l:' .. id)
      redis.call('ZREM', KEYS[2], member)
    else
      redis.call('HINCRBY', KEYS[1], 'l:' .. id, negate(amt))
    end
    redis.call('HINCRBY', KEYS[1], 'r:' .. scope, negate(amt))
  end
end
for i = 0, n - 1 do
  if redis.call('HEXISTS', KEYS[1], 'u:' .. ARGV[base + 4*i + 1]) == 0 then return {'missing'} end
end
local shares = {}
local roomy = true
for i = 0, n - 1 do
  local scope = ARGV[base + 4*i + 1]
  local limit = tonumber(ARGV[base + 4*i + 2])
  local used = tonumber(redis.call('HGET', KEYS[1], 'u:' .. scope))
  local reserved = tonumber(redis.call('HGET', KEYS[1], 'r:' .. scope) or '0')
  if used + reserved >= limit or used + reserved + amount > limit then
    return {'refused', scope, tostring(used), tostring(reserved)}
  end
  shares[i] = math.floor((limit - used - reserved) / share)
  if shares[i] < amount then roomy = false end
end
local out = {'lease'}
for i = 0, n - 1 do
  local scope = ARGV[base + 4*i + 1]
  if roomy then
    local granted = string.format('%.0f', shares[i])
    redis.call('HINCRBY', KEYS[1], 'r:' .. scope, granted)
    redis.call('HSET', KEYS[1], 'l:' .. ARGV[base + 4*i + 3], granted)
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[base + 4*i + 4])
    table.insert(out, granted)
  else
    redis.call('HINCRBY', KEYS[1], 'r:' .. scope, ARGV[1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
if roomy then return out end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
return {'ok'}
"""
"""Give back what the server returns of its leases, then lease a share of every scope (when
each share covers the request), else reserve the request alone, else refuse."""

_ABSORB = _NEGATE + """
local i = 2
local groups = tonumber(ARGV[i])
i = i + 1
local entries, totals = {}, {}
for g = 1, groups do
  local hash, k = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local list = {}
  for e = 1, k do
    list[e] = {hash, ARGV[i], ARGV[i + 1]}
    i = i + 2
  end
  entries[g] = list
  totals[g] = 0
end
local function fold(g)
  local total = totals[g]
  if total == 0 then return end
  totals[g] = 0
  local add, sub = string.format('%d', total), string.format('%d', -total)
  for _, e in ipairs(entries[g]) do
    local hash, scope, id = e[1], e[2], e[3]
    if redis.call('HEXISTS', hash, 'l:' .. id) == 1 then
      redis.call('HINCRBY', hash, 'l:' .. id, sub)
      redis.call('HINCRBY', hash, 'r:' .. scope, sub)
    end
    -- a counter Redis lost is seeded again from the ledger, which holds this row already
    if redis.call('HEXISTS', hash, 'u:' .. scope) == 1 then
      redis.call('HINCRBY', hash, 'u:' .. scope, add)
    end
  end
end
local calls = tonumber(ARGV[i])
i = i + 1
local fresh = {}
for c = 1, calls do
  local guard, g, cost = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  if not fresh[guard] and redis.call('EXISTS', guard) == 0 then
    fresh[guard] = true
    if totals[g] + cost > 9007199254740991 then fold(g) end  -- sums stay exact in Lua's doubles
    totals[g] = totals[g] + cost
  end
end
for g = 1, groups do fold(g) end
local r = tonumber(ARGV[i])
i = i + 1
for j = 1, r do
  local hash, scope, id, member, amt, close = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  i = i + 6
  local held = redis.call('HGET', hash, 'l:' .. id)
  if held then
    if close == '1' then
      amt = held
      redis.call('HDEL', hash, 'l:' .. id)
      redis.call('ZREM', KEYS[1], member)
    else
      redis.call('HINCRBY', hash, 'l:' .. id, negate(amt))
    end
    redis.call('HINCRBY', hash, 'r:' .. scope, negate(amt))
  end
end
-- last: a script Redis stops half-way has folded a call without its guard (counted again on
-- the retry: never under), rather than a guard without its fold
for guard in pairs(fresh) do redis.call('SET', guard, '1', 'EX', ARGV[1]) end
return 1
"""
"""Fold settled calls into the counters, each once (a guard key per request id), and give back
what the server returns of its leases. Calls come as (guard, group, cost); a group is one
counter hash and the leases its calls were held on, so the counters move once per group and
batch, not once per call."""

_RELEASE_LEASE = _NEGATE + """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
local held = redis.call('HGET', KEYS[1], 'l:' .. ARGV[3])
if held then
  redis.call('HDEL', KEYS[1], 'l:' .. ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[4], negate(held))
end
return 1
"""
"""Give back what an expired lease (of a server that died) still holds."""

APPLIED_SECONDS = 2 * 86400
"""How long Redis remembers that a call's cost was folded in (one small key per call that held
credit): a spool is replayed whole when its server dies, and a server's spool file starts anew
once its calls are absorbed and it has grown past `ROTATE_BYTES` or lived a day."""

UNITS = Decimal(10) ** 8
"""Redis counts integers: credits × 10^8 (exact at the ledger's precision)."""


def _units(amount: Decimal) -> int:
    return int((amount * UNITS).to_integral_value())


def _credits(units: int | str) -> Decimal:
    return credits(Decimal(int(float(units))) / UNITS)


class RedisCounters:
    """Counters in Redis, shared by every replica that names the same server."""

    PREFIX = "cockpit:budget"

    def __init__(self, url: str, hold_seconds: float = HOLD_SECONDS, namespace: str = "default", engine: Engine | None = None) -> None:
        import redis

        self.engine = engine
        """Where `absorb` writes ledger rows."""
        self.queue = ledger_queue(namespace)
        """Where the settling script pushes the ledger row (the database's own queue)."""
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        self.hold = hold_seconds
        self._settle = self.client.register_script(_SETTLE)
        self._release = self.client.register_script(_RELEASE)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._absorb = self.client.register_script(_ABSORB)
        self._release_lease = self.client.register_script(_RELEASE_LEASE)
        self._applied = f"{self.PREFIX}:applied:{namespace}:"
        self._open = f"{self.PREFIX}:open"

    def _key(self, account_id: uuid.UUID, window: Window) -> str:
        return f"{self.PREFIX}:{account_id}:{int(window.start.timestamp())}"

    def _seed_scopes(self, key: str, scopes: Sequence[str], seed: Seed) -> None:
        """Seed every scope of the chain from the ledger: HSETNX leaves those that exist alone."""
        used = seed(scopes)
        pipeline = self.client.pipeline()
        for scope in scopes:
            pipeline.hsetnx(key, f"u:{scope}", _units(credits(used.get(scope, 0))))
        pipeline.execute()

    def settle(self, reservation: Reservation, cost: Decimal, ledger_row: Mapping[str, Any] | None = None) -> bool:
        key = self._key(reservation.account_id, reservation.window)
        row = encode_row(ledger_row) if ledger_row is not None else ""
        self._settle(keys=[key, self._open, self.queue], args=[reservation.token, _units(reservation.amount), _units(cost), row, *reservation.scopes])
        return ledger_row is not None

    def renew(self, reservations: Sequence[Reservation]) -> set[uuid.UUID]:
        if not reservations:
            return set()
        pipeline = self.client.pipeline(transaction=False)
        until = _epoch() + self.hold
        for held in reservations:
            pipeline.zadd(self._open, {held.token: until}, xx=True, ch=True)  # XX: a settled hold stays gone
        return {held.id for held, changed in zip(reservations, pipeline.execute()) if changed}

    def release_expired(self, now: dt.datetime | None = None) -> int:
        moment = (now or dt.datetime.now(UTC)).timestamp()
        released = 0
        for member in self.client.zrangebyscore(self._open, "-inf", moment):
            held = json.loads(member)
            if held.get("lease"):
                done = self._release_lease(keys=[held["key"], self._open], args=[member, moment, held["id"], held["scopes"][0]])
            else:
                done = self._release(keys=[held["key"], self._open], args=[member, held["amount"], moment, *held["scopes"]])
            released += bool(done)
        return released

    def acquire(self, account_id: uuid.UUID, window: Window, limits: Sequence[Limit], amount: Decimal, returned: Sequence[Release], seed: Seed) -> Grant | Reservation | Refusal:
        key = self._key(account_id, window)
        scopes = tuple(sorted({limit.scope for limit in limits}))
        reservation_id = uuid.uuid4()
        member = json.dumps({"id": str(reservation_id), "key": key, "scopes": scopes, "amount": _units(amount)})
        leases = {limit.scope: self._lease(key, account_id, window, limit.scope) for limit in limits}
        head: list[Any] = [_units(amount), LEASE_SHARE, _epoch() + self.hold, self._ttl(window), member, len(limits)]
        body: list[Any] = []
        for limit in limits:
            lease = leases[limit.scope]
            body += [limit.scope, _units(limit.limit), str(lease.id), lease.token]
        for _ in range(3):
            tail: list[Any] = [len(returned)]
            for release in returned:
                tail += [release.lease.scopes[0], str(release.lease.id), release.lease.token, _units(release.amount), int(release.close)]
            answer = [part.decode() if isinstance(part, bytes) else part for part in self._acquire(keys=[key, self._open], args=[*head, *tail[:1], *body, *tail[1:]])]
            returned = ()  # given back already, whatever the answer
            if answer[0] == "ok":
                return Reservation(reservation_id, account_id, window, scopes, amount, member)
            if answer[0] == "lease":
                granted = [_credits(units) for units in answer[1:]]
                return Grant({limit.scope: (replace(leases[limit.scope], amount=share), share) for limit, share in zip(limits, granted)})
            if answer[0] == "refused":
                scope = answer[1]
                limit = next(limit.limit for limit in limits if limit.scope == scope)
                return Refusal(scope, limit, _credits(answer[2]), _credits(answer[3]))
            self._seed_scopes(key, scopes, seed)
        raise RuntimeError("budget counters could not be created")  # pragma: no cover

    def _lease(self, key: str, account_id: uuid.UUID, window: Window, scope: str) -> Reservation:
        lease_id = uuid.uuid4()
        member = json.dumps({"id": str(lease_id), "key": key, "scopes": [scope], "lease": True})
        return Reservation(lease_id, account_id, window, (scope,), Decimal(0), member)

    def absorb(self, settled: Sequence[Settled], releases: Sequence[Release] = ()) -> None:
        if settled:
            if self.engine is None:
                raise RuntimeError("RedisCounters.absorb needs the engine its ledger rows go to")
            with write_transaction(self.engine) as connection:
                _insert_new_rows(connection, settled)
        groups: dict[tuple[Any, ...], int] = {}
        group_args: list[Any] = []
        call_args: list[Any] = []
        for call in settled:
            if not call.leases:  # nothing held: nothing to fold
                continue
            hash_key = f"{self.PREFIX}:{call.account_id}:{int(call.window_start.timestamp())}"
            entries = tuple((scope, str(lease_id)) for scope, lease_id, _token in call.leases)
            group = groups.get((hash_key, entries))
            if group is None:
                group = groups[(hash_key, entries)] = len(groups) + 1
                group_args += [hash_key, len(entries), *(part for entry in entries for part in entry)]
            call_args += [self._applied + str(call.row["request_id"]), group, _units(call.credits)]
        args: list[Any] = [APPLIED_SECONDS, len(groups), *group_args, len(call_args) // 3, *call_args]
        args.append(len(releases))
        for release in releases:
            lease = release.lease
            args += [self._key(lease.account_id, lease.window), lease.scopes[0], str(lease.id), lease.token, _units(release.amount), int(release.close)]
        self._absorb(keys=[self._open], args=args)

    def used(self, account_id: uuid.UUID, window: Window, scopes: Sequence[str]) -> dict[str, tuple[Decimal, Decimal]]:
        key = self._key(account_id, window)
        found = {}
        for scope in scopes:
            used, reserved = self.client.hmget(key, f"u:{scope}", f"r:{scope}")
            if used is not None:
                found[scope] = (_credits(used), _credits(reserved or 0))
        return found

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _ttl(window: Window) -> int:
        """Keep a window's counters a week past its end (renewals and reports may look back)."""
        return max(3600, int((window.end - dt.datetime.now(UTC)).total_seconds()) + 7 * 86400)


def _epoch() -> float:
    return dt.datetime.now(UTC).timestamp()


def hold_seconds(environ: Mapping[str, str]) -> float:
    """`COCKPIT_BUDGET_HOLD_SECONDS` (default 60, at least 1): how long a hold outlives its
    server. Shorter gives a killed server's credits back sooner, at the cost of more renewals."""
    raw = (environ.get("COCKPIT_BUDGET_HOLD_SECONDS") or "").strip()
    try:
        return max(1.0, float(raw)) if raw else HOLD_SECONDS
    except ValueError:
        raise ValueError(f"COCKPIT_BUDGET_HOLD_SECONDS must be a number of seconds, not {raw!r}") from None


def counters_from_environment(engine: Engine, environ: Mapping[str, str]) -> Counters:
    """Redis when `REDIS_URL` is set (replicas share it), else the database."""
    url = (environ.get("REDIS_URL") or "").strip()
    hold = hold_seconds(environ)
    return RedisCounters(url, hold, ledger_namespace(engine), engine) if url else SqlCounters(engine, hold)
