"""Budget counters that concurrent requests cannot overspend: reserve, then settle.

A request reserves its maximum cost on every scope of its chain (`user:…`, `team:…`,
`org:…` or `pool`, and `account`) in one atomic step that first checks each scope's limit
against what is used plus what other requests hold; after the call it settles, in one atomic
step, the real cost (used += cost, reserved −= the hold). So however many requests run at once,
on however many replicas, the sum of what they can spend never passes a limit.

Two stores keep the counters, with the same semantics:
- `SqlCounters`: the `budget_counters` table, one short transaction per step. Reserving is
  one UPDATE … RETURNING of the chain's rows, which holds the amount and takes the row locks
  (the write lock on SQLite) until the transaction ends; a refusal rolls it back.
- `RedisCounters` (when `REDIS_URL` is set): one Lua script per step on one hash per account and
  window, atomic on the Redis server, shared by every replica. Settling pushes the call's
  ledger row onto a Redis list in the same script (`cockpit.budgets.ledger.RedisLedgerWriter`
  moves it to the database), so here too a kill cannot part counters from ledger.

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
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Mapping, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cockpit.budgets.ledger import encode_row, ledger_namespace, ledger_queue
from cockpit.budgets.usage import UTC, Window
from cockpit.store.inserts import insert_new
from cockpit.store.tables import budget_counters, budget_reservations, usage_ledger

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


class Counters(Protocol):
    def reserve(self, account_id: uuid.UUID, window: Window, limits: Sequence[Limit], amount: Decimal, seed: Seed) -> Reservation | Refusal: ...

    def settle(self, reservation: Reservation, cost: Decimal, ledger_row: Mapping[str, Any] | None = None) -> bool:
        """Charge `cost` and drop the hold; True when `ledger_row` was written with it."""
        ...

    def renew(self, reservations: Sequence[Reservation]) -> None:
        """Push back the expiry of holds whose calls are still running."""
        ...

    def release_expired(self, now: dt.datetime | None = None) -> int: ...

    def used(self, account_id: uuid.UUID, window: Window, scopes: Sequence[str]) -> dict[str, tuple[Decimal, Decimal]]: ...

    def close(self) -> None: ...


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

    def reserve(self, account_id: uuid.UUID, window: Window, limits: Sequence[Limit], amount: Decimal, seed: Seed) -> Reservation | Refusal:
        scopes = sorted({limit.scope for limit in limits})
        c = budget_counters.c
        for _ in range(3):
            with self._serial, self.engine.connect() as connection:
                transaction = connection.begin()
                # Hold the amount on every scope at once; the UPDATE also locks the rows (the
                # write lock on SQLite) until the transaction ends, so the check below sees
                # what every other request has taken, and a refusal rolls the hold back.
                rows = connection.execute(
                    self._rows(account_id, window, scopes).values(reserved=c.reserved + amount).returning(c.scope, c.used, c.reserved)
                ).all()
                found = {row.scope: (credits(row.used), credits(row.reserved) - amount) for row in rows}
                missing = [scope for scope in scopes if scope not in found]
                refusal = None if missing else first_refusal(limits, amount, found)
                if missing or refusal is not None:
                    transaction.rollback()
                    if refusal is not None:
                        return refusal
                else:
                    reservation = Reservation(uuid.uuid4(), account_id, window, tuple(scopes), amount)
                    connection.execute(
                        budget_reservations.insert().values(
                            id=reservation.id, account_id=account_id, window_start=window.start,
                            scopes=list(scopes), amount=amount, expires_at=dt.datetime.now(UTC) + self.hold,
                        )
                    )
                    transaction.commit()
                    return reservation
            self._seed(account_id, window, missing, seed)
        raise RuntimeError("budget counters could not be created")  # pragma: no cover - seeding inserts them

    def settle(self, reservation: Reservation, cost: Decimal, ledger_row: Mapping[str, Any] | None = None) -> bool:
        with self._serial, self.engine.begin() as connection:
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

    def renew(self, reservations: Sequence[Reservation]) -> None:
        if not reservations:
            return
        r = budget_reservations.c
        with self.engine.begin() as connection:
            connection.execute(
                budget_reservations.update().where(r.id.in_([held.id for held in reservations])).values(expires_at=dt.datetime.now(UTC) + self.hold)
            )

    def release_expired(self, now: dt.datetime | None = None) -> int:
        now = now or dt.datetime.now(UTC)
        r = budget_reservations.c
        with self.engine.begin() as connection:
            expired = connection.execute(sa.select(r.id, r.account_id, r.window_start, r.scopes, r.amount).where(r.expires_at < now)).all()
            for row in expired:  # re-checked at delete: a renewal since the SELECT keeps the hold
                if connection.execute(budget_reservations.delete().where(r.id == row.id, r.expires_at < now)).rowcount:
                    window = Window(row.window_start, row.window_start)
                    connection.execute(
                        self._rows(row.account_id, window, row.scopes).values(reserved=budget_counters.c.reserved - row.amount)
                    )
        return len(expired)

    def used(self, account_id: uuid.UUID, window: Window, scopes: Sequence[str]) -> dict[str, tuple[Decimal, Decimal]]:
        c = budget_counters.c
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(c.scope, c.used, c.reserved).where(c.account_id == account_id, c.window_start == window.start, c.scope.in_(list(scopes)))
            ).all()
        return {row.scope: (credits(row.used), credits(row.reserved)) for row in rows}

    def close(self) -> None:
        pass

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
        with self.engine.begin() as connection:
            connection.execute(insert_new(connection, budget_counters, rows, ("account_id", "window_start", "scope")))


# -- Redis ------------------------------------------------------------------------------------

_RESERVE = """
local amount = tonumber(ARGV[1])
local n = (#ARGV - 4) / 2
for i = 1, n do
  if redis.call('HEXISTS', KEYS[1], 'u:' .. ARGV[3 + 2 * i]) == 0 then
    return {'missing', ARGV[3 + 2 * i]}
  end
end
for i = 1, n do
  local scope = ARGV[3 + 2 * i]
  local limit = tonumber(ARGV[4 + 2 * i])
  local used = tonumber(redis.call('HGET', KEYS[1], 'u:' .. scope))
  local reserved = tonumber(redis.call('HGET', KEYS[1], 'r:' .. scope) or '0')
  if used + reserved >= limit or used + reserved + amount > limit then
    return {'refused', scope, tostring(used), tostring(reserved)}
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[3 + 2 * i], amount)
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {'ok'}
"""

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

UNITS = Decimal(10) ** 8
"""Redis counts integers: credits × 10^8 (exact at the ledger's precision)."""


def _units(amount: Decimal) -> int:
    return int((amount * UNITS).to_integral_value())


def _credits(units: int | str) -> Decimal:
    return credits(Decimal(int(float(units))) / UNITS)


class RedisCounters:
    """Counters in Redis, shared by every replica that names the same server."""

    PREFIX = "cockpit:budget"

    def __init__(self, url: str, hold_seconds: float = HOLD_SECONDS, namespace: str = "default") -> None:
        import redis

        self.queue = ledger_queue(namespace)
        """Where the settling script pushes the ledger row (the database's own queue)."""
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        self.hold = hold_seconds
        self._reserve = self.client.register_script(_RESERVE)
        self._settle = self.client.register_script(_SETTLE)
        self._release = self.client.register_script(_RELEASE)
        self._open = f"{self.PREFIX}:open"

    def _key(self, account_id: uuid.UUID, window: Window) -> str:
        return f"{self.PREFIX}:{account_id}:{int(window.start.timestamp())}"

    def reserve(self, account_id: uuid.UUID, window: Window, limits: Sequence[Limit], amount: Decimal, seed: Seed) -> Reservation | Refusal:
        key = self._key(account_id, window)
        scopes = tuple(sorted({limit.scope for limit in limits}))
        reservation_id = uuid.uuid4()
        member = json.dumps({"id": str(reservation_id), "key": key, "scopes": scopes, "amount": _units(amount)})
        args: list[Any] = [_units(amount), member, _epoch() + self.hold, self._ttl(window)]
        for limit in limits:
            args += [limit.scope, _units(limit.limit)]
        for _ in range(3):
            answer = [part.decode() if isinstance(part, bytes) else part for part in self._reserve(keys=[key, self._open], args=args)]
            if answer[0] == "ok":
                return Reservation(reservation_id, account_id, window, scopes, amount, member)
            if answer[0] == "refused":
                scope = answer[1]
                limit = next(limit.limit for limit in limits if limit.scope == scope)
                return Refusal(scope, limit, _credits(answer[2]), _credits(answer[3]))
            # Seed every scope of the chain: HSETNX leaves those that exist alone.
            used = seed(scopes)
            pipeline = self.client.pipeline()
            for scope in scopes:
                pipeline.hsetnx(key, f"u:{scope}", _units(credits(used.get(scope, 0))))
            pipeline.execute()
        raise RuntimeError("budget counters could not be created")  # pragma: no cover

    def settle(self, reservation: Reservation, cost: Decimal, ledger_row: Mapping[str, Any] | None = None) -> bool:
        key = self._key(reservation.account_id, reservation.window)
        row = encode_row(ledger_row) if ledger_row is not None else ""
        self._settle(keys=[key, self._open, self.queue], args=[reservation.token, _units(reservation.amount), _units(cost), row, *reservation.scopes])
        return ledger_row is not None

    def renew(self, reservations: Sequence[Reservation]) -> None:
        if not reservations:
            return
        pipeline = self.client.pipeline(transaction=False)
        until = _epoch() + self.hold
        for held in reservations:
            pipeline.zadd(self._open, {held.token: until}, xx=True)  # XX: a settled hold stays gone
        pipeline.execute()

    def release_expired(self, now: dt.datetime | None = None) -> int:
        moment = (now or dt.datetime.now(UTC)).timestamp()
        released = 0
        for member in self.client.zrangebyscore(self._open, "-inf", moment):
            held = json.loads(member)
            if self._release(keys=[held["key"], self._open], args=[member, held["amount"], moment, *held["scopes"]]):
                released += 1
        return released

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
    return RedisCounters(url, hold, ledger_namespace(engine)) if url else SqlCounters(engine, hold)
