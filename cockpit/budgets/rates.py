"""Rate limits at run time: requests and tokens per minute, counted exactly across replicas.

A call is admitted only if every limit on the caller's chain has room
(`cockpit.policy.rate_limits.effective_rate_limits` says which, each with its counter key): in
one atomic step the limiter counts the request on every counter and reserves the request's
token bound (the same upper bound the budget holds) against each TPM; a limit without room
refuses the whole call and nothing is counted. After the call, `settle` replaces the bound by
the tokens the provider reported. So N + k concurrent calls against `rpm: N` admit exactly N,
on one process or many.

Windows are fixed minutes (Unix time // 60), the same on every replica; a refused call is told
to retry when the current minute ends. (A fixed window lets a burst of up to 2 × the limit
straddle a minute boundary; the counters stay exact within each minute.)

Two stores, one semantics:
- `SqlRates`: the `rate_counters` table, one transaction per step: the call's counters are
  created if new, locked in key order (SELECT … FOR UPDATE; SQLite's write lock), checked and
  incremented; a refusal rolls back. Rows of earlier minutes are deleted when a counter starts
  a new minute.
- `RedisRates` (when `REDIS_URL` is set): one Lua script per step over one hash per counter and
  minute, atomic on the server and shared by every replica; the hashes expire after two
  minutes.

Every answer carries what OpenAI's headers say (`headers()`): for requests and for tokens, the
tightest limit of the chain, what is left of it in this minute and when the minute ends.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cockpit.policy.rate_limits import EffectiveRateLimit
from cockpit.store.inserts import insert_new
from cockpit.store.tables import rate_counters
from cockpit.store.engine import write_transaction

WINDOW_SECONDS = 60
Clock = Callable[[], float]
"""Seconds since the epoch (`time.time`); replicas' clocks agree to well within a minute."""


@dataclass(frozen=True)
class RateCounter:
    """One limit a call must pass, as the limiter needs it."""

    key: str
    """The counter (`cockpit.policy.rate_limits.counter_key`)."""
    scope: str
    """How a refusal names the limit: `team:research/ml (gpt-4o)`."""
    rpm: int | None = None
    tpm: int | None = None

    @classmethod
    def of(cls, limit: EffectiveRateLimit) -> RateCounter:
        return cls(limit.key, limit.label, limit.rpm, limit.tpm)


@dataclass(frozen=True)
class Quota:
    """One trio of OpenAI's headers: the tightest limit, what is left, when it resets."""

    limit: int
    remaining: int
    reset_seconds: float


@dataclass(frozen=True)
class Admission:
    """A call counted on its counters; `settle` it once its usage is known."""

    window: int
    keys: tuple[str, ...]
    tokens_bound: int
    requests: Quota | None = None
    tokens: Quota | None = None

    def headers(self) -> dict[str, str]:
        return rate_headers(self.requests, self.tokens)


@dataclass(frozen=True)
class RateRefusal:
    """The first limit (most specific first) without room for the call; nothing was counted."""

    scope: str
    metric: str
    """`requests` or `tokens`."""
    limit: int
    retry_after: int
    """Whole seconds until the minute ends (`Retry-After`)."""
    requests: Quota | None = None
    tokens: Quota | None = None
    too_large: bool = False
    """The call's token bound alone is over the limit: waiting will not help."""

    def headers(self) -> dict[str, str]:
        return {**rate_headers(self.requests, self.tokens), "retry-after": str(self.retry_after)}

    @property
    def message(self) -> str:
        unit = "requests" if self.metric == "requests" else "tokens"
        if self.too_large:
            return (
                f"Rate limit of {self.scope}: this request may use more tokens than its limit of "
                f"{self.limit:,} {unit} per minute; lower max_tokens or shorten the input."
            )
        return (
            f"Rate limit reached for {self.scope}: {self.limit:,} {unit} per minute. "
            f"Please try again in {self.retry_after}s."
        )

    def body(self) -> dict[str, object]:
        """The 429 body, in OpenAI's error shape."""
        return {"error": {"message": self.message, "type": "requests" if self.metric == "requests" else "tokens", "param": None, "code": "rate_limit_exceeded"}}


class RateLimiter(Protocol):
    def admit(self, counters: Sequence[RateCounter], tokens_bound: int) -> Admission | RateRefusal: ...

    def settle(self, admission: Admission, actual_tokens: int) -> None:
        """Replace the reserved bound by the tokens the call used."""
        ...

    def close(self) -> None: ...


def rate_headers(requests: Quota | None, tokens: Quota | None) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers for the trios that have a limit."""
    headers: dict[str, str] = {}
    for name, quota in (("requests", requests), ("tokens", tokens)):
        if quota is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(quota.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, quota.remaining))
            headers[f"x-ratelimit-reset-{name}"] = duration(quota.reset_seconds)
    return headers


def duration(seconds: float) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `0.5s`."""
    if seconds < 60:
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return f"{text}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def decide(
    counters: Sequence[RateCounter],
    found: Mapping[str, tuple[int, int]],
    tokens_bound: int,
    window: int,
    now: float,
) -> Admission | RateRefusal:
    """The one rule both stores apply to the counts they read under their lock: (requests,
    tokens) per key before this call."""
    reset = (window + 1) * WINDOW_SECONDS - now
    for counter in counters:
        requests, tokens = found.get(counter.key, (0, 0))
        metric = None
        if counter.rpm is not None and requests + 1 > counter.rpm:
            metric, limit = "requests", counter.rpm
        elif counter.tpm is not None and tokens + tokens_bound > counter.tpm:
            metric, limit = "tokens", counter.tpm
        if metric is not None:
            quotas = _quotas(counters, found, 0, 0, reset)
            too_large = metric == "tokens" and tokens_bound > limit
            return RateRefusal(counter.scope, metric, limit, max(1, math.ceil(reset)), *quotas, too_large=too_large)
    keys = tuple(sorted({c.key for c in counters}))
    return Admission(window, keys, tokens_bound, *_quotas(counters, found, 1, tokens_bound, reset))


def _quotas(
    counters: Sequence[RateCounter], found: Mapping[str, tuple[int, int]], request: int, bound: int, reset: float
) -> tuple[Quota | None, Quota | None]:
    """The tightest limit for requests and for tokens, after counting `request` and `bound`."""
    requests = tokens = None
    for counter in counters:
        used_requests, used_tokens = found.get(counter.key, (0, 0))
        if counter.rpm is not None:
            quota = Quota(counter.rpm, counter.rpm - used_requests - request, reset)
            if requests is None or quota.remaining < requests.remaining:
                requests = quota
        if counter.tpm is not None:
            quota = Quota(counter.tpm, counter.tpm - used_tokens - bound, reset)
            if tokens is None or quota.remaining < tokens.remaining:
                tokens = quota
    return requests, tokens


def _window(now: float) -> int:
    return int(now // WINDOW_SECONDS)


# -- the database ----------------------------------------------------------------------------


class SqlRates:
    """Rate counters in the application database."""

    def __init__(self, engine: Engine, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock
        # SQLite has one write lock per file and its busy handler polls: threads of one process
        # queue here instead, as the budget counters do. PostgreSQL locks the rows.
        self._serial = threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    def admit(self, counters: Sequence[RateCounter], tokens_bound: int) -> Admission | RateRefusal:
        now = self.clock()
        window = _window(now)
        if not counters:
            return Admission(window, (), tokens_bound)
        keys = sorted({c.key for c in counters})
        c = rate_counters.c
        with self._serial, self.engine.connect() as connection:
            transaction = connection.begin()
            fresh = [{"id": uuid.uuid4(), "key": key, "window": window, "requests": 0, "tokens": 0} for key in keys]
            if connection.execute(insert_new(connection, rate_counters, fresh, ("key", "window"))).rowcount:
                connection.execute(rate_counters.delete().where(c.key.in_(keys), c.window < window))
            rows = connection.execute(
                sa.select(c.key, c.requests, c.tokens).where(c.key.in_(keys), c.window == window).order_by(c.key).with_for_update()
            ).all()
            found = {row.key: (int(row.requests), int(row.tokens)) for row in rows}
            decision = decide(counters, found, tokens_bound, window, now)
            if isinstance(decision, RateRefusal):
                transaction.rollback()
                return decision
            connection.execute(
                rate_counters.update().where(c.key.in_(keys), c.window == window).values(requests=c.requests + 1, tokens=c.tokens + tokens_bound)
            )
            transaction.commit()
            return decision

    def settle(self, admission: Admission, actual_tokens: int) -> None:
        delta = actual_tokens - admission.tokens_bound
        if not admission.keys or delta == 0:
            return
        c = rate_counters.c
        with self._serial, write_transaction(self.engine) as connection:
            connection.execute(
                rate_counters.update().where(c.key.in_(admission.keys), c.window == admission.window).values(tokens=c.tokens + delta)
            )

    def counts(self, key: str) -> tuple[int, int]:
        """(requests, tokens) of a counter in the current minute: for reports and tests."""
        c = rate_counters.c
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(c.requests, c.tokens).where(c.key == key, c.window == _window(self.clock()))).first()
        return (int(row.requests), int(row.tokens)) if row else (0, 0)

    def close(self) -> None:
        pass


# -- Redis -----------------------------------------------------------------------------------

_ADMIT = """
local bound = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local counts = {}
for i = 1, #KEYS do
  local r = tonumber(redis.call('HGET', KEYS[i], 'r') or '0')
  local t = tonumber(redis.call('HGET', KEYS[i], 't') or '0')
  table.insert(counts, r)
  table.insert(counts, t)
end
for i = 1, #KEYS do
  local rpm = tonumber(ARGV[1 + 2 * i])
  local tpm = tonumber(ARGV[2 + 2 * i])
  if (rpm >= 0 and counts[2 * i - 1] + 1 > rpm) or (tpm >= 0 and counts[2 * i] + bound > tpm) then
    table.insert(counts, 1, 'refused')
    return counts
  end
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'r', 1)
  redis.call('HINCRBY', KEYS[i], 't', bound)
  redis.call('EXPIRE', KEYS[i], ttl)
end
table.insert(counts, 1, 'ok')
return counts
"""
"""KEYS: one hash per counter and minute; ARGV: bound, ttl, then (rpm, tpm) per key, -1 for
none. Answers the counts before this call, after 'ok' or 'refused'."""

_SETTLE = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 't', tonumber(ARGV[1]))
  end
end
return 1
"""


class RedisRates:
    """Rate counters in Redis, shared by every replica that names the same server."""

    PREFIX = "cockpit:rate"

    def __init__(self, url: str, namespace: str = "default", clock: Clock = time.time) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        self.namespace = namespace
        self.clock = clock
        self._admit = self.client.register_script(_ADMIT)
        self._settle = self.client.register_script(_SETTLE)

    def _key(self, key: str, window: int) -> str:
        return f"{self.PREFIX}:{self.namespace}:{window}:{key}"

    def admit(self, counters: Sequence[RateCounter], tokens_bound: int) -> Admission | RateRefusal:
        now = self.clock()
        window = _window(now)
        if not counters:
            return Admission(window, (), tokens_bound)
        # One entry per key, holding the tightest rpm and tpm any limit puts on it: a key is
        # counted once per call, and the script checks every limit on it.
        merged: dict[str, tuple[int, int]] = {}
        for counter in counters:
            rpm, tpm = merged.get(counter.key, (-1, -1))
            merged[counter.key] = (_tighter(rpm, counter.rpm), _tighter(tpm, counter.tpm))
        keys = sorted(merged)
        args: list[int] = [tokens_bound, 2 * WINDOW_SECONDS]
        for key in keys:
            args += list(merged[key])
        answer = self._admit(keys=[self._key(key, window) for key in keys], args=args)
        verdict = answer[0].decode() if isinstance(answer[0], bytes) else answer[0]
        counts = [int(value) for value in answer[1:]]
        found = {key: (counts[2 * i], counts[2 * i + 1]) for i, key in enumerate(keys)}
        decision = decide(counters, found, tokens_bound, window, now)
        if (verdict == "ok") != isinstance(decision, Admission):  # pragma: no cover - one rule
            raise RuntimeError(f"the rate script said {verdict!r} where the limits say otherwise")
        return decision

    def settle(self, admission: Admission, actual_tokens: int) -> None:
        delta = actual_tokens - admission.tokens_bound
        if admission.keys and delta:
            self._settle(keys=[self._key(key, admission.window) for key in admission.keys], args=[delta])

    def counts(self, key: str) -> tuple[int, int]:
        requests, tokens = self.client.hmget(self._key(key, _window(self.clock())), "r", "t")
        return int(requests or 0), int(tokens or 0)

    def close(self) -> None:
        self.client.close()


def _tighter(current: int, limit: int | None) -> int:
    if limit is None:
        return current
    return limit if current < 0 else min(current, limit)


def rates_from_environment(engine: Engine, environ: Mapping[str, str], namespace: str = "default") -> RateLimiter:
    """Redis when `REDIS_URL` is set (replicas share it), else the database. `namespace`
    keeps deployments sharing one Redis apart (`cockpit.budgets.ledger.ledger_namespace`)."""
    url = (environ.get("REDIS_URL") or "").strip()
    return RedisRates(url, namespace) if url else SqlRates(engine)
