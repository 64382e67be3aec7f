"""Benchmark: the overspend attacks of the security review, replayed as figures.

Run on demand (the dev venv; Redis at BENCH_REDIS_URL, default redis://127.0.0.1:6379/11):

    python tests/bench/bench_overspend.py [--streams 45] [--burst 70]

For each counter store (the database, Redis) it applies the attack tenant of
`tests/test_attacks_budgets.py` to a fresh SQLite database, serves it (real uvicorn, litellm,
the fake upstream) and replays:

- `n=128 streams`: `--streams` concurrent streamed requests with `n: 128, max_tokens: 1` from
  alice, who has 1.00 credit (each can bill 128 credits; the review saw 115.29 charged);
- `mixed burst`: `--burst` concurrent requests mixing `n`, streams with `n`, float
  `max_tokens`, tool and `response_format` schemas, from bob (the org's 50 credits) and alice,
  against a provider that bills past the limits it is sent.

It prints, per store and attack, the requests served and refused, what the counters charged
against each limit, and how many charges were clamped to their hold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import httpx
import sqlalchemy as sa

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from fakes.openai import serve_openai  # noqa: E402
from harness.proxy import InProcessServer, issue_key  # noqa: E402
from test_attacks_budgets import ask, tenant  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


def prepare(directory: Path, upstream_url: str, api_key: str) -> str:
    url = f"sqlite:///{directory / 'cockpit.db'}"
    environ = {**os.environ, "DATABASE_URL": url, "FAKE_OPENAI_KEY": api_key}
    repo = directory / "tenant"
    repo.mkdir()
    (repo / "tenant.yaml").write_text(tenant(upstream_url))
    cockpit = str(Path(sys.executable).parent / "cockpit")
    for command in ([cockpit, "db", "upgrade"], [cockpit, "apply", str(repo), "--auto-approve"]):
        subprocess.run(command, env=environ, cwd=directory, check=True, capture_output=True)
    os.environ["FAKE_OPENAI_KEY"] = api_key
    return url


async def fire(base: str, requests: list[tuple[str, dict]]) -> list[int]:
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=len(requests))) as client:
        async def one(key: str, body: dict) -> int:
            response = await client.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body)
            await response.aread()
            return response.status_code

        return list(await asyncio.gather(*(one(key, body) for key, body in requests)))


def charged(server: InProcessServer) -> tuple[dict[str, Decimal], int]:
    """Credits per scope in the ledger (which the counters equal), and the clamped charges."""
    assert server.app.state.proxy.flush()
    with server.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT user_email, credits, metadata FROM usage_ledger")).all()
    per_user: dict[str, Decimal] = {}
    clamped = 0
    for row in rows:
        per_user[row.user_email] = per_user.get(row.user_email, Decimal(0)) + Decimal(str(row.credits))
        metadata = row.metadata if isinstance(row.metadata, dict) else json.loads(row.metadata or "{}")
        clamped += "clamped_credits" in metadata
    return per_user, clamped


def run(store: str, streams: int, burst: int) -> list[tuple]:
    results = []
    upstream = serve_openai()
    try:
        with tempfile.TemporaryDirectory() as temp:
            url = prepare(Path(temp), upstream.url, upstream.api_key)
            if store == "redis":
                import redis

                redis.Redis.from_url(REDIS_URL).flushdb()
            with InProcessServer(url, {"REDIS_URL": REDIS_URL if store == "redis" else ""}) as server:
                alice, bob = issue_key(url, "alice@acme.com"), issue_key(url, "bob@acme.com")
                statuses = asyncio.run(fire(server.url, [(alice, ask(stream=True, n=128, max_tokens=1))] * streams))
                spent, clamped = charged(server)
                results.append((store, f"{streams} n=128 streams", statuses.count(200), len(statuses) - statuses.count(200), spent.get("alice@acme.com", Decimal(0)), Decimal(1), clamped))
                upstream.honour_max_tokens = False
                tools = [{"type": "function", "function": {"name": "lookup", "description": " ".join(["describe"] * 300), "parameters": {"type": "object"}}}]
                shapes = [ask(n=3, max_tokens=2), ask(n=128, max_tokens=1), ask(max_tokens=2.0), ask(stream=True, n=2, max_tokens=1),
                          ask(model="dear", tools=tools, max_tokens=1), ask(model="dear", stream=True, tools=tools, max_tokens=2),
                          ask(model="dear", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "description": "field " * 200}}}, max_tokens=1)]
                requests = [(alice if i % 5 == 0 else bob, shapes[i % len(shapes)]) for i in range(burst)]
                statuses = asyncio.run(fire(server.url, requests))
                spent, clamped = charged(server)
                results.append((store, f"{burst} mixed shapes (org 50)", statuses.count(200), len(statuses) - statuses.count(200), spent.get("bob@acme.com", Decimal(0)) + spent.get("alice@acme.com", Decimal(0)), Decimal(50), clamped))
    finally:
        upstream.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=45)
    parser.add_argument("--burst", type=int, default=70)
    args = parser.parse_args()
    rows = [row for store in ("database", "redis") for row in run(store, args.streams, args.burst)]
    print(f"{'counters':<9} {'attack':<28} {'served':>6} {'refused':>7} {'charged':>10} {'limit':>6} {'clamped':>7}")
    for store, attack, served, refused, spent, limit, clamped in rows:
        print(f"{store:<9} {attack:<28} {served:>6} {refused:>7} {spent:>10.4f} {limit:>6} {clamped:>7}")


if __name__ == "__main__":
    main()
