"""The Redis database of this test run: `REDIS_URL`.

Tests that put budget counters or rate limits in Redis start from an empty database
(`flushdb`), so two test runs on one machine (a developer's and CI's, say) must not share
one. `COCKPIT_TEST_REDIS_URL` names the database when set; otherwise the run claims the first
free one of databases 1 to 10 on the local server (a key in database 0, set only if absent,
deleted when the run ends and expiring after six hours should the run be killed). Database 11
is the benchmarks' (`BENCH_REDIS_URL`).
"""

from __future__ import annotations

import atexit
import os

import redis

SERVER = "redis://127.0.0.1:6379"
CLAIMED_FOR_SECONDS = 6 * 3600


def _claim() -> str:
    named = os.environ.get("COCKPIT_TEST_REDIS_URL", "").strip()
    if named:
        return named
    admin = redis.Redis.from_url(f"{SERVER}/0", socket_connect_timeout=2)
    try:
        for db in range(1, 11):
            key = f"cockpit:test-run:{db}"
            if admin.set(key, os.getpid(), nx=True, ex=CLAIMED_FOR_SECONDS):
                atexit.register(_release, admin, key)
                return f"{SERVER}/{db}"
    except redis.ConnectionError:  # no server: the Redis tests fail on their own, with its address
        return f"{SERVER}/1"
    raise RuntimeError(f"every Redis database 1-10 on {SERVER} is claimed by a test run (keys cockpit:test-run:* in database 0)")


def _release(admin: redis.Redis, key: str) -> None:
    try:
        admin.delete(key)
    except redis.RedisError:  # expires on its own
        pass


REDIS_URL = _claim()
