"""The Redis ledger queue belongs to one database: deployments (or test runs) sharing a Redis
server never write each other's ledger rows."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from cockpit.budgets.ledger import RedisLedgerWriter, ledger_namespace
from cockpit.store.engine import create_engine_for
from cockpit.store.migrate import upgrade
from harness.redis_db import REDIS_URL


def row(account_id: uuid.UUID) -> dict[str, object]:
    return {
        "id": uuid.uuid4(), "account_id": account_id, "domain": "copilot", "org_key": None, "team_key": None,
        "user_email": "a@example.com", "agent_name": None, "model_name": "m", "connection_name": None,
        "guardrail_code": None, "raw_cost": Decimal("0.01"), "credit_factor": Decimal(1), "credits": Decimal("0.01"),
        "request_id": f"ck-{uuid.uuid4().hex}", "metadata": {}, "created_at": dt.datetime.now(dt.timezone.utc),
    }


def test_two_databases_sharing_redis_keep_their_own_rows(tmp_path: Path) -> None:
    import redis
    client = redis.Redis.from_url(REDIS_URL)
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("one", "two")]
    engines = [create_engine_for(url) for url in urls]
    for url in urls:
        upgrade(url)
    assert ledger_namespace(engines[0]) != ledger_namespace(engines[1])
    assert ledger_namespace(engines[0]) == ledger_namespace(create_engine_for(urls[0]))  # replicas agree
    writers = [RedisLedgerWriter(engine, client) for engine in engines]
    try:
        accounts = [uuid.uuid4(), uuid.uuid4()]
        for writer, account in zip(writers, accounts):
            for _ in range(3):
                writer.record(row(account))
        for writer in writers:
            assert writer.flush()
    finally:
        for writer in writers:
            writer.close()
    for engine, account in zip(engines, accounts):
        with engine.connect() as connection:
            found = connection.execute(sa.text("SELECT account_id FROM usage_ledger")).scalars().all()
        assert len(found) == 3 and {uuid.UUID(str(value)) for value in found} == {account}
        engine.dispose()


def scans(client) -> int:
    """SCAN commands the Redis server has run so far."""
    return int(client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def test_the_claims_of_a_writer_that_died_are_written_by_another_without_scanning_the_keys(tmp_path: Path) -> None:
    """A writer killed between claiming rows and writing them leaves them on its claimed list;
    another writer gives them back to the queue and writes them. It finds that list in the
    registry of claims: with a hundred thousand other keys in the database (one guard key per
    absorbed call lives two days), its periodic work runs no SCAN (one, at start, looks for
    claims made before the registry)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    url = f"sqlite:///{tmp_path / 'ledger'}.db"
    upgrade(url)
    engine = create_engine_for(url)
    client.mset({f"cockpit:budget:applied:test:{n}": 1 for n in range(100_000)})
    account = uuid.uuid4()
    dead = RedisLedgerWriter(engine, client, interval=3600)  # its thread claims and writes nothing more
    dead._stop.set()
    dead._thread.join()
    for _ in range(3):
        dead.record(row(account))
    assert len(dead._claim(keys=[dead.queue, dead._claimed, dead._claims], args=[10])) == 3  # claimed, then killed
    writer = RedisLedgerWriter(engine, client, interval=0.05)
    try:
        deadline = time.monotonic() + 10
        while len(found := ledger_accounts(engine)) < 3:
            assert time.monotonic() < deadline, "the dead writer's claimed rows were never written"
            time.sleep(0.05)
        assert len(found) == 3 and set(found) == {account}
        before = scans(client)  # after the writer's start-up and the rounds that wrote them
        time.sleep(0.5)  # ten more rounds of its periodic work
        assert scans(client) == before, "the writer scans Redis's keys while it runs"
    finally:
        writer.close()
        client.delete(*[f"cockpit:budget:applied:test:{n}" for n in range(100_000)])
        engine.dispose()


def ledger_accounts(engine: sa.Engine) -> list[uuid.UUID]:
    with engine.connect() as connection:
        return [uuid.UUID(str(value)) for value in connection.execute(sa.text("SELECT account_id FROM usage_ledger")).scalars()]
