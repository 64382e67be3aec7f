"""The rate limiter (`cockpit.budgets.rates`) on its three stores: SQLite, PostgreSQL, Redis.

Real stores, real concurrency: N + k admissions at once against `rpm: N`, from two limiter
instances sharing the store (two replicas), admit exactly N. The clock is a parameter of the
limiter (a fixed instant mid-minute), so a test never straddles a window by bad luck.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from cockpit.budgets.rates import (
    Admission,
    Quota,
    RateCounter,
    RateLimiter,
    RateRefusal,
    RedisRates,
    SqlRates,
    duration,
    rate_headers,
)
from cockpit.store.engine import create_engine_for
from cockpit.store.migrate import upgrade
from harness.redis_db import REDIS_URL

MINUTE = 29_000_000  # a Unix minute; the clock sits 30 s into it unless a test moves it


class Clock:
    def __init__(self) -> None:
        self.now = MINUTE * 60 + 30.0

    def __call__(self) -> float:
        return self.now


Factory = Callable[[Clock], RateLimiter]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "redis"])
def limiters(request: pytest.FixtureRequest, tmp_path) -> Iterator[Factory]:
    """Make limiter instances ("replicas") that share one store."""
    made: list[RateLimiter] = []
    engines = []
    if request.param == "redis":
        namespace = f"test-{uuid.uuid4().hex}"

        def make(clock: Clock) -> RateLimiter:
            limiter = RedisRates(REDIS_URL, namespace, clock)
            made.append(limiter)
            return limiter
    else:
        url = f"sqlite:///{tmp_path / 'rates.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_database_url")
        upgrade(url)

        def make(clock: Clock) -> RateLimiter:
            engine = create_engine_for(url)
            engines.append(engine)
            limiter = SqlRates(engine, clock)
            made.append(limiter)
            return limiter
    yield make
    for limiter in made:
        limiter.close()
    for engine in engines:
        engine.dispose()
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{RedisRates.PREFIX}:{namespace}:*"):
            client.delete(key)
        client.close()


def _counter(key: str = "acme:copilot:account::*", scope: str = "account", rpm: int | None = None, tpm: int | None = None) -> RateCounter:
    return RateCounter(key, scope, rpm, tpm)


def test_concurrent_admissions_across_two_replicas_admit_exactly_the_limit(limiters: Factory) -> None:
    clock = Clock()
    replicas = [limiters(clock), limiters(clock)]
    limit, extra = 12, 9
    counters = [_counter(rpm=limit), _counter("acme:copilot:user:bob@acme.com:*", "user:bob@acme.com", rpm=1000)]
    start = threading.Barrier(limit + extra)

    def call(i: int) -> Admission | RateRefusal:
        start.wait(timeout=30)
        return replicas[i % 2].admit(counters, 10)

    with ThreadPoolExecutor(limit + extra) as pool:
        answers = list(pool.map(call, range(limit + extra)))
    admitted = [a for a in answers if isinstance(a, Admission)]
    refused = [a for a in answers if isinstance(a, RateRefusal)]
    assert len(admitted) == limit and len(refused) == extra
    assert {r.scope for r in refused} == {"account"} and {r.metric for r in refused} == {"requests"}
    assert sorted(a.requests.remaining for a in admitted) == list(range(limit))
    # refusals counted nothing: the user's counter holds exactly the admitted calls
    assert replicas[0].counts("acme:copilot:user:bob@acme.com:*") == (limit, limit * 10)


def test_tokens_are_reserved_at_admission_and_settled_from_usage(limiters: Factory) -> None:
    clock = Clock()
    limiter = limiters(clock)
    counters = [_counter(tpm=1000)]
    first = limiter.admit(counters, 600)
    assert isinstance(first, Admission) and first.tokens.remaining == 400
    refused = limiter.admit(counters, 600)
    assert isinstance(refused, RateRefusal) and refused.metric == "tokens" and not refused.too_large
    limiter.settle(first, 150)  # the call used 150 of its 600
    assert limiter.counts(counters[0].key) == (1, 150)
    second = limiter.admit(counters, 600)
    assert isinstance(second, Admission) and second.tokens.remaining == 250
    too_big = limiter.admit(counters, 5000)
    assert isinstance(too_big, RateRefusal) and too_big.too_large and "lower max_tokens" in too_big.message


def test_a_refusal_names_the_most_specific_scope_and_when_to_retry(limiters: Factory) -> None:
    clock = Clock()
    limiter = limiters(clock)
    team = _counter("acme:copilot:team:research%2Fml:gpt-4o", "team:research/ml (gpt-4o)", rpm=2)
    account = _counter(rpm=100, tpm=10_000)
    for _ in range(2):
        assert isinstance(limiter.admit([team, account], 100), Admission)
    clock.now += 10  # 40 s into the minute: 20 s left
    refusal = limiter.admit([team, account], 100)
    assert isinstance(refusal, RateRefusal)
    assert (refusal.scope, refusal.limit, refusal.retry_after) == ("team:research/ml (gpt-4o)", 2, 20)
    body = refusal.body()["error"]
    assert body["code"] == "rate_limit_exceeded" and "team:research/ml (gpt-4o)" in body["message"]
    headers = refusal.headers()
    assert headers["retry-after"] == "20"
    assert headers["x-ratelimit-limit-requests"] == "2" and headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-tokens"] == "10000" and headers["x-ratelimit-remaining-tokens"] == "9800"
    assert headers["x-ratelimit-reset-requests"] == "20s"
    assert limiter.counts(account.key) == (2, 200)  # the refused call was not counted anywhere


def test_a_new_minute_starts_from_zero(limiters: Factory) -> None:
    clock = Clock()
    limiter = limiters(clock)
    counters = [_counter(rpm=1)]
    admitted = limiter.admit(counters, 5)
    assert isinstance(admitted, Admission)
    assert isinstance(limiter.admit(counters, 5), RateRefusal)
    clock.now += 30  # the next minute
    again = limiter.admit(counters, 5)
    assert isinstance(again, Admission) and again.requests.remaining == 0 and again.window == admitted.window + 1
    limiter.settle(admitted, 1)  # settling last minute's call leaves this minute alone
    assert limiter.counts(counters[0].key) == (1, 5)


def test_admission_headers_report_the_tightest_limit(limiters: Factory) -> None:
    limiter = limiters(Clock())
    counters = [_counter("a", "user:x", rpm=50, tpm=900), _counter("b", "account", rpm=5, tpm=100_000)]
    admitted = limiter.admit(counters, 100)
    assert isinstance(admitted, Admission)
    headers = admitted.headers()
    assert headers["x-ratelimit-limit-requests"] == "5" and headers["x-ratelimit-remaining-requests"] == "4"
    assert headers["x-ratelimit-limit-tokens"] == "900" and headers["x-ratelimit-remaining-tokens"] == "800"
    assert headers["x-ratelimit-reset-tokens"] == "30s"
    assert limiter.admit([], 100).headers() == {}


def test_openai_duration_format() -> None:
    assert duration(30.0) == "30s" and duration(0.25) == "0.25s" and duration(360) == "6m0s"
    assert rate_headers(None, Quota(10, -3, 1.5)) == {
        "x-ratelimit-limit-tokens": "10", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1.5s",
    }
